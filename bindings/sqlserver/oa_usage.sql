/*
 * oa_usage.sql: the seed procedure on dpopkit's COM server (OLE Automation, sp_OACreate),
 * with the three ProgIDs changed and nothing else:
 *     Chilkat.PrivateKey -> DpopKit.PrivateKey
 *     Chilkat.JsonObject -> DpopKit.JsonObject
 *     Chilkat.Http       -> DpopKit.Http
 *
 * The other route is SQL CLR (install.sql / usage.sql). This one needs no assembly, but
 * runs a native in-process COM server inside sqlservr.exe, with sysadmin rights.
 *
 * ---- 1. Register the COM server (once per server, as an administrator) ----------------
 *   copy dpopkit.dll C:\dpopkit\bin\            (the 64-bit DLL from the Windows zip)
 *   C:\Windows\System32\regsvr32.exe C:\dpopkit\bin\dpopkit.dll
 * This writes HKLM\Software\Classes\DpopKit.* and CLSID\{...}\InprocServer32 =
 * C:\dpopkit\bin\dpopkit.dll with ThreadingModel Both, and registers the type library that
 * is inside the DLL. Per machine: SQL Server's service account does not see per-user
 * (regsvr32 /n /i:user) registrations. Give the service account read access to the DLL
 * folder and the key file, and write access to the session log folder. To update the DLL,
 * stop SQL Server (an in-process server stays loaded), replace the file, start it again.
 * To remove: regsvr32 /u C:\dpopkit\bin\dpopkit.dll
 *
 * ---- 2. Allow OLE Automation (sysadmin) ------------------------------------------------
 */
EXEC sp_configure 'show advanced options', 1;
RECONFIGURE;
EXEC sp_configure 'Ole Automation Procedures', 1;
RECONFIGURE;
GO

/* ---- 3. The seed procedure ------------------------------------------------------------
 * The calls are the seed's, one for one. EDIT the paths, URLs and where the secret comes
 * from. Every sp_OA* call returns an HRESULT (0 = S_OK); sp_OAGetErrorInfo tells why one
 * failed (its description never contains a secret). Members that succeed or fail return an
 * int 1 or 0, and LastErrorText says why (nvarchar(4000) holds it).
 */
USE [YourDb];                                                  -- EDIT
GO
CREATE OR ALTER PROCEDURE dbo.CallApiWithDpopOA
    @status int OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @hr int, @success int, @iTmp0 int;
    DECLARE @sTmp0 nvarchar(4000);
    DECLARE @privKey int, @json int, @http int;

    EXEC @hr = sp_OACreate 'DpopKit.PrivateKey', @privKey OUT;
    IF @hr <> 0 BEGIN PRINT 'Failed to create DpopKit.PrivateKey (is dpopkit.dll registered?)'; RETURN 1; END;

    EXEC sp_OAMethod @privKey, 'LoadAnyFormatFile', @success OUT, 'C:\dpopkit\keys\dpop_ec_p256.pem', '';   -- EDIT
    IF @success = 0
    BEGIN
        EXEC sp_OAGetProperty @privKey, 'LastErrorText', @sTmp0 OUT;
        PRINT @sTmp0;
        EXEC @hr = sp_OADestroy @privKey;
        RETURN 1;
    END;

    EXEC @hr = sp_OACreate 'DpopKit.JsonObject', @json OUT;
    -- Keep the secret out of source code: read it from a table only this procedure's owner can read.
    DECLARE @secret nvarchar(4000) = (SELECT secret FROM dbo.ApiSecrets WHERE name = N'm2m');          -- EDIT
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'client_secret', @secret;
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'client_id', 'm2m.dpop';                      -- EDIT
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'token_endpoint', 'https://auth.example.com/oauth/token';  -- EDIT
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'scope', 'api';                               -- EDIT

    EXEC @hr = sp_OACreate 'DpopKit.Http', @http OUT;
    EXEC sp_OAMethod @http, 'SetDPoPKey', @success OUT, @privKey;
    EXEC sp_OAMethod @json, 'Emit', @sTmp0 OUT;
    EXEC sp_OASetProperty @http, 'AuthToken', @sTmp0;
    EXEC sp_OASetProperty @http, 'SessionLogFilename', 'C:\dpopkit\logs\sessionLog.txt';               -- EDIT (or leave out)

    EXEC sp_OAMethod @http, 'QuickGetStr', @sTmp0 OUT, 'https://api.example.com/v1/resource';           -- EDIT
    EXEC sp_OAGetProperty @http, 'LastMethodSuccess', @iTmp0 OUT;
    IF @iTmp0 = 0
    BEGIN
        EXEC sp_OAGetProperty @http, 'LastErrorText', @sTmp0 OUT;
        PRINT @sTmp0;
    END
    ELSE
        PRINT @sTmp0;   -- at most 4000 characters: see 4. for longer bodies

    EXEC sp_OAGetProperty @http, 'LastStatus', @status OUT;
    PRINT 'HTTP status: ' + CAST(@status AS nvarchar(10));

    EXEC @hr = sp_OADestroy @http;
    EXEC @hr = sp_OADestroy @json;
    EXEC @hr = sp_OADestroy @privKey;
    RETURN CASE WHEN @iTmp0 = 1 THEN 0 ELSE 1 END;
END;
GO

/* ---- 4. A body longer than 4000 characters -------------------------------------------
 * An OUTPUT variable of sp_OAMethod / sp_OAGetProperty holds at most 4000 characters
 * (longer strings are truncated). Without an OUTPUT variable, sp_OAGetProperty returns the
 * value as a one-row, one-column result set, which INSERT ... EXEC captures whole into an
 * nvarchar(max) column. So: make the request, then read LastResponseBody that way.
 */
CREATE OR ALTER PROCEDURE dbo.GetLongBodyOA
    @url    nvarchar(4000),
    @body   nvarchar(max) OUTPUT,
    @status int OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @hr int, @success int, @ignored nvarchar(4000), @err nvarchar(4000);
    DECLARE @privKey int, @json int, @http int;
    DECLARE @out TABLE (v nvarchar(max));

    EXEC @hr = sp_OACreate 'DpopKit.PrivateKey', @privKey OUT;
    EXEC sp_OAMethod @privKey, 'LoadAnyFormatFile', @success OUT, 'C:\dpopkit\keys\dpop_ec_p256.pem', '';   -- EDIT
    EXEC @hr = sp_OACreate 'DpopKit.JsonObject', @json OUT;
    DECLARE @secret nvarchar(4000) = (SELECT secret FROM dbo.ApiSecrets WHERE name = N'm2m');          -- EDIT
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'client_secret', @secret;
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'client_id', 'm2m.dpop';                      -- EDIT
    EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'token_endpoint', 'https://auth.example.com/oauth/token';  -- EDIT
    EXEC @hr = sp_OACreate 'DpopKit.Http', @http OUT;
    EXEC sp_OAMethod @http, 'SetDPoPKey', @success OUT, @privKey;
    EXEC sp_OAMethod @json, 'Emit', @ignored OUT;
    EXEC sp_OASetProperty @http, 'AuthToken', @ignored;

    -- The request; its (possibly truncated) return value is not used.
    EXEC sp_OAMethod @http, 'QuickGetStr', @ignored OUT, @url;
    EXEC sp_OAGetProperty @http, 'LastStatus', @status OUT;

    -- The whole body, through a result set.
    INSERT INTO @out (v) EXEC sp_OAGetProperty @http, 'LastResponseBody';
    SELECT @body = v FROM @out;

    IF @status = 0
    BEGIN
        EXEC sp_OAGetProperty @http, 'LastErrorText', @err OUT;
        RAISERROR(N'dpopkit: %s', 16, 1, @err);
    END;

    EXEC sp_OADestroy @http;
    EXEC sp_OADestroy @json;
    EXEC sp_OADestroy @privKey;
END;
GO

DECLARE @b nvarchar(max), @s int;
EXEC dbo.GetLongBodyOA N'https://api.example.com/v1/large-resource', @b OUTPUT, @s OUTPUT;   -- EDIT
SELECT @s AS http_status, LEN(@b) AS body_length, @b AS body;
GO

/* ---- 5. More of the surface (members: README "SQL Server", bindings/sqlserver/README.md) ----
 *   EXEC sp_OAMethod @http, 'SetRequestHeader', @success OUT, 'Idempotency-Key', 'order-42';
 *   EXEC sp_OAMethod @http, 'QuickRequestStr', @sTmp0 OUT, 'POST', @url, 'application/json', @jsonBody;
 *   EXEC sp_OAGetProperty @http, 'LastStatus', @status OUT;            -- 201
 *   EXEC sp_OAGetProperty @http, 'LastStatusText', @sTmp0 OUT;         -- Created
 *   EXEC sp_OAMethod @http, 'LastResponseHeaderValue', @sTmp0 OUT, 'Location';
 *   EXEC sp_OAMethod @http, 'SetTimeouts', @success OUT, 10000, 30000; -- connect, whole call (ms)
 *   EXEC sp_OAMethod @http, 'SetUseOsTrustStore', @success OUT, 1;     -- the Windows certificate store
 * Bytes (QuickGetBytes, LastResponseBodyBytes) are a Byte() array: use a varbinary(max)
 * result set (INSERT ... EXEC sp_OAGetProperty @http, 'LastResponseBodyBytes').
 */
