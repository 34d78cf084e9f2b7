/*
 * usage.sql: the Chilkat-based procedure this replaces, rewritten on dpopkit.
 *
 * Before (Chilkat, sp_OACreate):
 *   load EC key file -> JSON {client_secret, client_id, token_endpoint, scope}
 *   -> http.SetDPoPKey -> http.AuthToken = json.Emit() -> http.SessionLogFilename
 *   -> resp = http.QuickGetStr(API_URL) -> status = http.LastStatus
 *
 * After: one call of dbo.DpopKit_GetWithDpop (install.sql). EDIT the values below.
 * Keep the client secret out of source code: read it from a table only the calling
 * principal can read, or pass it in from the application.
 */
USE [YourDb];                                                  -- EDIT
GO

CREATE OR ALTER PROCEDURE dbo.CallApiWithDpop
    @response nvarchar(max) OUTPUT,
    @status   int OUTPUT
AS
BEGIN
    SET NOCOUNT ON;

    DECLARE @keyPath    nvarchar(4000) = N'C:\dpopkit\keys\dpop_ec_p256.pem';      -- EDIT
    DECLARE @keyPass    nvarchar(4000) = NULL;             -- password of an encrypted key
    DECLARE @apiUrl     nvarchar(4000) = N'https://api.example.com/v1/resource';  -- EDIT
    DECLARE @sessionLog nvarchar(4000) = N'C:\dpopkit\logs\session.log';         -- or NULL

    -- The AuthToken JSON, as Chilkat's JsonObject.Emit() built it. FOR JSON escapes '/'
    -- as '\/', which is the same JSON. (SQL Server 2022: JSON_OBJECT(...) also works.)
    DECLARE @authToken nvarchar(max) =
    (
        SELECT client_secret  = (SELECT secret FROM dbo.ApiSecrets WHERE name = N'm2m'),  -- EDIT
               client_id      = N'm2m.dpop',                                            -- EDIT
               token_endpoint = N'https://auth.example.com/oauth/token',                -- EDIT
               scope          = N'api'
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER
    );

    DECLARE @rc int, @errorText nvarchar(max);
    EXEC @rc = dbo.DpopKit_GetWithDpop
        @keyPath, @keyPass, @authToken, @apiUrl, @sessionLog,
        @response OUTPUT, @status OUTPUT, @errorText OUTPUT;

    IF @rc <> 0
    BEGIN
        -- @status is the HTTP status (0 when no response came); @errorText never contains
        -- the secret, the token or the key. RAISERROR arguments are nvarchar(2047) at most.
        DECLARE @msg nvarchar(2047) = LEFT(@errorText, 2000);
        RAISERROR(N'dpopkit error %d (HTTP %d): %s', 16, 1, @rc, @status, @msg);
        RETURN @rc;
    END;
    RETURN 0;
END;
GO

/* ---- Calling it ---- */
DECLARE @resp nvarchar(max), @st int;
EXEC dbo.CallApiWithDpop @resp OUTPUT, @st OUTPUT;
SELECT @st AS http_status, @resp AS body;
-- A JSON array answer as rows:
-- SELECT * FROM OPENJSON(@resp) WITH (type nvarchar(100), value nvarchar(max));
GO

/* ---- The scalar functions: NULL on failure (use the procedure to see why) ---- */
DECLARE @auth nvarchar(max) = N'{"client_secret":"secret","client_id":"m2m.dpop","token_endpoint":"https://auth.example.com/oauth/token","scope":"api"}';  -- EDIT
SELECT dbo.DpopKit_Get(N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth,
                       N'https://api.example.com/v1/resource') AS body;

-- Set-based: one call per row through the cached objects (one token for all rows).
-- SELECT o.id, dbo.DpopKit_GetCached(N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth,
--            N'https://api.example.com/v1/orders/' + CAST(o.id AS nvarchar(20))) AS body
-- FROM dbo.Orders AS o WHERE o.needs_sync = 1;

/* ---- POST through the cached objects ---- */
DECLARE @b nvarchar(max), @s int, @e nvarchar(max), @r int;
EXEC @r = dbo.DpopKit_RequestCached
    N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth,
    N'POST', N'https://api.example.com/v1/resource', N'application/json', N'{"name":"x"}',
    @b OUTPUT, @s OUTPUT, @e OUTPUT;
SELECT @r AS rc, @s AS http_status, @b AS body, @e AS error_text;

GO

/* ---- POST/PUT/PATCH/DELETE with request headers: dbo.DpopKit_Request ---- */
CREATE OR ALTER PROCEDURE dbo.CreateOrderWithDpop
    @orderJson nvarchar(max),
    @orderId   int,
    @location  nvarchar(4000) OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @auth nvarchar(max) =
    (
        SELECT client_secret  = (SELECT secret FROM dbo.ApiSecrets WHERE name = N'm2m'),  -- EDIT
               client_id      = N'm2m.dpop',                                            -- EDIT
               token_endpoint = N'https://auth.example.com/oauth/token',                -- EDIT
               scope          = N'api'
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER
    );
    -- The request headers as a JSON object; numbers are sent as their text, NULLs skipped.
    DECLARE @headers nvarchar(max) =
    (
        SELECT [Accept]           = N'application/json',
               [Idempotency-Key]  = CONCAT(N'order-', @orderId),   -- the same key on a retry
               [X-Correlation-Id] = CONVERT(nvarchar(36), NEWID())
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER
    );
    DECLARE @rc int, @body nvarchar(max), @status int, @statusText nvarchar(64),
            @responseHeaders nvarchar(max), @errorText nvarchar(max);
    EXEC @rc = dbo.DpopKit_Request
        N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth,
        N'POST', N'https://api.example.com/v1/orders', @headers,
        N'application/json', @orderJson, NULL,
        @body OUTPUT, @status OUTPUT, @statusText OUTPUT, @responseHeaders OUTPUT, @errorText OUTPUT;
    IF @rc <> 0
    BEGIN
        -- @body holds the API's error document when it answered (e.g. 409 Conflict).
        DECLARE @msg nvarchar(2047) = LEFT(CONCAT(@errorText, N' ', @body), 2000);
        RAISERROR(N'dpopkit error %d (HTTP %d %s): %s', 16, 1, @rc, @status, @statusText, @msg);
        RETURN @rc;
    END;
    SET @location = JSON_VALUE(@responseHeaders, '$.location');       -- e.g. /v1/orders/123
    -- Also: JSON_VALUE(@responseHeaders, '$.etag'), '$."retry-after"'
    RETURN 0;
END;
GO

-- PUT / PATCH / DELETE the same way, e.g. with If-Match from an earlier ETag:
-- EXEC @r = dbo.DpopKit_Request N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth, N'DELETE', N'https://api.example.com/v1/orders/123',
--      N'{"If-Match":"\"item-123\""}', NULL, NULL, NULL, @b OUTPUT, @s OUTPUT, @st OUTPUT, @h OUTPUT, @e OUTPUT;

/* ---- A PDF (any bytes) into a varbinary(max) column: dbo.DpopKit_RequestBinary ---- */
-- DECLARE @auth nvarchar(max) = N'{...}';   -- as above
-- DECLARE @pdf varbinary(max), @s int, @st nvarchar(64), @h nvarchar(max), @e nvarchar(max), @r int;
-- EXEC @r = dbo.DpopKit_RequestBinary N'C:\dpopkit\keys\dpop_ec_p256.pem', NULL, @auth,
--      N'GET', N'https://api.example.com/v1/invoices/7/pdf', N'{"Accept":"application/pdf"}',
--      NULL, NULL, NULL, @pdf OUTPUT, @s OUTPUT, @st OUTPUT, @h OUTPUT, @e OUTPUT;
-- INSERT dbo.Invoices (id, pdf) VALUES (7, @pdf);

-- After replacing the key file or rotating the secret:
-- EXEC dbo.DpopKit_ClearCache;
GO
