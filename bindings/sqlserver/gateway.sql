-- dpopkit gateway for SQL Server 2025 (Windows or Linux); Azure SQL Managed Instance too,
-- with the gateway on a host it can reach (its https URL in place of https://localhost:8443):
-- T-SQL calls `dpopkit serve` over HTTPS with sp_invoke_external_rest_endpoint; the
-- gateway adds the DPoP-bound token and a fresh proof and forwards to its fixed upstream.
-- No CLR, no native DLL in SQL Server's process. See README.md "Gateway: dpopkit serve".
--
-- Before running this script:
--   * the gateway runs (systemd unit or Windows service, see README) and listens on
--     https://localhost:8443 with a route, e.g. prefix "/orders/";
--   * its certificate is trusted by the machine SQL Server runs on
--     (`dpopkit serve --config FILE --print-cert > dpopkit-gateway.crt`, then: Windows:
--     Certificates (Local Computer) > Trusted Root Certification Authorities > Import;
--     Linux: copy it to /var/opt/mssql/security/ca-certificates/ and restart SQL Server);
--   * replace <GATEWAY KEY> below with the caller secret the gateway reads from its
--     caller_secret_env variable, and <MASTER KEY PASSWORD> with a strong password.

-- 1. Once per server: allow sp_invoke_external_rest_endpoint.
EXEC sp_configure 'external rest endpoint enabled', 1;
RECONFIGURE WITH OVERRIDE;
GO

-- 2. Once per database: a master key protects the credential; the credential holds the
--    header the gateway checks. Its name is the URL prefix it is used for; IDENTITY
--    'HTTPEndpointHeaders' makes SQL Server send SECRET's members as request headers.
IF NOT EXISTS (SELECT 1 FROM sys.symmetric_keys WHERE name = '##MS_DatabaseMasterKey##')
    CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'<MASTER KEY PASSWORD>';
GO
IF EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = N'https://localhost:8443')
    DROP DATABASE SCOPED CREDENTIAL [https://localhost:8443];
CREATE DATABASE SCOPED CREDENTIAL [https://localhost:8443]
    WITH IDENTITY = 'HTTPEndpointHeaders',
         SECRET = N'{"X-DpopKit-Gateway-Key":"<GATEWAY KEY>"}';
GO

-- 3. The procedure: one request through the gateway. @path is the gateway path
--    (route prefix + the rest, e.g. N'/orders/items?state=open'); @headers a flat JSON
--    object of extra request headers (N'{"Idempotency-Key":"order-42"}'); @payload the
--    body (JSON, XML or text). Returns the HTTP status, the response headers (a JSON
--    object) and the body, as nvarchar(max); a JSON body comes back as its JSON text.
CREATE OR ALTER PROCEDURE dbo.DpopKit_GatewayRequest
    @path nvarchar(3000),
    @method nvarchar(6) = N'GET',
    @payload nvarchar(max) = NULL,
    @headers nvarchar(4000) = NULL,
    @timeout_seconds smallint = 30,
    @status int OUTPUT,
    @response_headers nvarchar(max) OUTPUT,
    @body nvarchar(max) OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @url nvarchar(4000) = N'https://localhost:8443' + @path;
    DECLARE @response nvarchar(max), @rc int;
    IF @headers IS NULL AND @payload IS NOT NULL
        SET @headers = N'{"Content-Type":"application/json"}';
    EXEC @rc = sys.sp_invoke_external_rest_endpoint
        @url = @url,
        @method = @method,
        @payload = @payload,
        @headers = @headers,
        @timeout = @timeout_seconds,
        @credential = [https://localhost:8443],
        @response = @response OUTPUT;
    -- {"response":{"status":{"http":{"code":201,"description":"Created"}},"headers":{...}},"result":...}
    SET @status = TRY_CONVERT(int, JSON_VALUE(@response, '$.response.status.http.code'));
    SET @response_headers = JSON_QUERY(@response, '$.response.headers');
    -- OPENJSON's value is nvarchar(max): the JSON text of an object or array, the text of a string.
    SELECT @body = [value] FROM OPENJSON(@response) WHERE [key] = N'result';
    RETURN @rc;
END;
GO

-- 4. Who may call it: EXECUTE on the procedure, and the permission to call external
--    endpoints and to use the credential.
-- GRANT EXECUTE ANY EXTERNAL ENDPOINT TO [app_user];
-- GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::[https://localhost:8443] TO [app_user];
-- GRANT EXECUTE ON dbo.DpopKit_GatewayRequest TO [app_user];

-- 5. Examples.
DECLARE @status int, @h nvarchar(max), @body nvarchar(max), @rc int;
EXEC @rc = dbo.DpopKit_GatewayRequest @path = N'/orders/items/7',
     @status = @status OUTPUT, @response_headers = @h OUTPUT, @body = @body OUTPUT;
SELECT @rc AS rc, @status AS http_status, @h AS response_headers, @body AS body;

EXEC @rc = dbo.DpopKit_GatewayRequest @path = N'/orders/items', @method = N'POST',
     @payload = N'{"sku":"A-1","qty":2}',
     @headers = N'{"Content-Type":"application/json","Idempotency-Key":"order-42"}',
     @status = @status OUTPUT, @response_headers = @h OUTPUT, @body = @body OUTPUT;
SELECT @status AS http_status, JSON_VALUE(@h, '$.Location') AS location, @body AS body;
GO
