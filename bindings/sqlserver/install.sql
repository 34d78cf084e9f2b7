/*
 * install.sql: registers the dpopkit SQL CLR assembly and its T-SQL entry points.
 *
 * Before running it (README.md):
 *   - 64-bit SQL Server on Windows (SQL Server on Linux allows SAFE assemblies only).
 *   - dpopkit.dll (the Rust library) where sqlservr.exe finds it: a directory on the
 *     SERVICE's PATH (restart the service after changing PATH), or load it by full path
 *     with dbo.DpopKit_Preload below.
 *   - DpopKitClr.dll (the C# assembly, built from DpopKit.cs and NativeMethods.g.cs,
 *     strong-name signed) in a
 *     folder the SQL Server service account can read, e.g. C:\dpopkit\.
 * Run as sysadmin. Edit the paths and the database name marked EDIT.
 */

/* ---- 1. Enable CLR (server-wide) -------------------------------------------------- */
USE master;
GO
EXEC sp_configure 'show advanced options', 1;
RECONFIGURE;
EXEC sp_configure 'clr enabled', 1;
RECONFIGURE;
GO

/* ---- 2. Trust the assembly -----------------------------------------------------------
 * dpopkit calls native code (P/Invoke), so the assembly must be PERMISSION_SET = UNSAFE.
 * Since SQL Server 2017 'clr strict security' is on: every assembly must be trusted in
 * one of these ways. Pick ONE.
 *
 * (A) Recommended: sign DpopKitClr.dll with a strong-name key (README: csc /keyfile:...),
 *     make a login from that key, and give only that login UNSAFE ASSEMBLY. Nothing else
 *     about the database changes, and only code signed with this key is trusted.
 */
-- (Skipped when install-clr.cmd's trust.sql already trusted the assembly, by key or hash.)
IF NOT EXISTS (SELECT 1 FROM sys.asymmetric_keys WHERE name = N'DpopKitSigningKey')
   AND NOT EXISTS (SELECT 1 FROM sys.trusted_assemblies WHERE description LIKE N'DpopKitClr,%')
BEGIN
    CREATE ASYMMETRIC KEY DpopKitSigningKey
        FROM EXECUTABLE FILE = 'C:\dpopkit\DpopKitClr.dll';   -- EDIT
    CREATE LOGIN DpopKitSigningLogin FROM ASYMMETRIC KEY DpopKitSigningKey;
    GRANT UNSAFE ASSEMBLY TO DpopKitSigningLogin;
END;
GO
/*
 * (B) Alternative (2017+): trust this exact build by its hash, without signing:
 *       DECLARE @hash varbinary(64) = (SELECT HASHBYTES('SHA2_512', BulkColumn)
 *           FROM OPENROWSET(BULK 'C:\dpopkit\DpopKitClr.dll', SINGLE_BLOB) AS f);
 *       EXEC sys.sp_add_trusted_assembly @hash, N'DpopKitClr';
 *     Every rebuild needs a new hash (sp_drop_trusted_assembly the old one).
 *     install-clr.cmd does this for you: ClrInstall.exe computes the hash from the file
 *     (or checks the signature for (A)) and writes trust.sql and untrust.sql.
 *
 * (C) Not recommended: ALTER DATABASE [YourDb] SET TRUSTWORTHY ON, with the database
 *     owned by a login that has UNSAFE ASSEMBLY. It works without signing, but any
 *     db_owner of that database can then act as sysadmin. Use it on a throwaway dev
 *     instance only.
 */

/* ---- 3. The assembly and the T-SQL entry points, in the calling database ------------ */
USE [YourDb];                                                  -- EDIT
GO
IF NOT EXISTS (SELECT 1 FROM sys.assemblies WHERE name = N'DpopKitClr')   -- (install-clr.cmd: made by trust.sql)
    CREATE ASSEMBLY DpopKitClr
        FROM 'C:\dpopkit\DpopKitClr.dll'                       -- EDIT
        WITH PERMISSION_SET = UNSAFE;
GO

/* (a) The whole seed flow in one call: load key, AuthToken, session log, GET.
 *     RETURN value 0 on success, else the dpopkit_result code (README: error codes).
 *     Key and Http objects are made per call; the access token is still fetched once
 *     per lifetime, because dpopkit caches tokens process-wide. */
CREATE PROCEDURE dbo.DpopKit_GetWithDpop
    @keyPath       nvarchar(4000),
    @keyPassword   nvarchar(4000),   -- NULL for an unencrypted key
    @authTokenJson nvarchar(max),    -- {"client_secret","client_id","token_endpoint","scope"}
    @url           nvarchar(4000),
    @sessionLog    nvarchar(4000),   -- NULL: no session log
    @body          nvarchar(max) OUTPUT,
    @status        int OUTPUT,
    @errorText     nvarchar(max) OUTPUT
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].GetWithDpop;
GO

/* (b) Scalar function: the body of a 2xx GET, NULL on any failure.
 *     No RETURNS NULL ON NULL INPUT: @keyPassword is NULL for unencrypted keys. */
CREATE FUNCTION dbo.DpopKit_Get
(
    @keyPath       nvarchar(4000),
    @keyPassword   nvarchar(4000),
    @authTokenJson nvarchar(max),
    @url           nvarchar(4000)
)
RETURNS nvarchar(max)
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].DpopGet;
GO

/* (c) The same, keeping the key and Http (and its keep-alive connections) across calls,
 *     cached per (key path, hash of password + AuthToken JSON) in the AppDomain. */
CREATE FUNCTION dbo.DpopKit_GetCached
(
    @keyPath       nvarchar(4000),
    @keyPassword   nvarchar(4000),
    @authTokenJson nvarchar(max),
    @url           nvarchar(4000)
)
RETURNS nvarchar(max)
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].DpopGetCached;
GO

/* Any method (POST, PUT, ...) through the cached objects, with status and error text. */
CREATE PROCEDURE dbo.DpopKit_RequestCached
    @keyPath       nvarchar(4000),
    @keyPassword   nvarchar(4000),
    @authTokenJson nvarchar(max),
    @method        nvarchar(16),
    @url           nvarchar(4000),
    @contentType   nvarchar(256),    -- NULL: no body
    @requestBody   nvarchar(max),    -- NULL: no body
    @body          nvarchar(max) OUTPUT,
    @status        int OUTPUT,
    @errorText     nvarchar(max) OUTPUT
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].RequestWithDpopCached;
GO

/* (d) POST/PUT/PATCH/DELETE (any method) with request headers given as a JSON object,
 *     e.g. N'{"Accept":"application/json","Idempotency-Key":"42"}' (FOR JSON PATH,
 *     WITHOUT_ARRAY_WRAPPER writes one; numbers and booleans are sent as their text, nulls
 *     are skipped; Authorization, DPoP, Host, Content-Length, Transfer-Encoding, Connection
 *     are refused). OUTPUT: the status and its text, the response headers as a JSON object
 *     (lower-case names: JSON_VALUE(@responseHeaders, '$.location')), and the body, also
 *     of a non-2xx answer. RETURN 0 or the error code (README). Objects per call: request
 *     headers never leak from one caller to another. */
CREATE PROCEDURE dbo.DpopKit_Request
    @keyPath         nvarchar(4000),
    @keyPassword     nvarchar(4000),
    @authTokenJson   nvarchar(max),
    @method          nvarchar(16),
    @url             nvarchar(4000),
    @requestHeaders  nvarchar(max),    -- JSON object, or NULL: none
    @contentType     nvarchar(256),    -- NULL: none
    @requestBody     nvarchar(max),    -- NULL: no body (sent as UTF-8)
    @sessionLog      nvarchar(4000),   -- NULL: no session log
    @body            nvarchar(max) OUTPUT,
    @status          int OUTPUT,
    @statusText      nvarchar(64) OUTPUT,
    @responseHeaders nvarchar(max) OUTPUT,
    @errorText       nvarchar(max) OUTPUT
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].RequestWithHeaders;
GO

/* The same with varbinary bodies both ways: PDFs, images, any bytes. */
CREATE PROCEDURE dbo.DpopKit_RequestBinary
    @keyPath         nvarchar(4000),
    @keyPassword     nvarchar(4000),
    @authTokenJson   nvarchar(max),
    @method          nvarchar(16),
    @url             nvarchar(4000),
    @requestHeaders  nvarchar(max),
    @contentType     nvarchar(256),
    @requestBody     varbinary(max),   -- NULL: no body
    @sessionLog      nvarchar(4000),
    @body            varbinary(max) OUTPUT,
    @status          int OUTPUT,
    @statusText      nvarchar(64) OUTPUT,
    @responseHeaders nvarchar(max) OUTPUT,
    @errorText       nvarchar(max) OUTPUT
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].RequestBinaryWithHeaders;
GO

/* Drops the cached objects (e.g. after replacing the key file). RETURN = how many. */
CREATE PROCEDURE dbo.DpopKit_ClearCache
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].ClearCache;
GO

CREATE FUNCTION dbo.DpopKit_Version()
RETURNS nvarchar(64)
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].DpopKitVersion;
GO

/* Loads dpopkit.dll from a full path, for hosts where it is not on the service's PATH.
 * Run it once after every service start, before any other dpopkit call (e.g. from a
 * startup procedure: sp_procoption). */
CREATE PROCEDURE dbo.DpopKit_Preload
    @dllFullPath nvarchar(4000)
AS EXTERNAL NAME DpopKitClr.[DpopKit.DpopKitSql].Preload;
GO

/* ---- 4. Permissions: only the callers that need the API ----------------------------- */
-- GRANT EXECUTE ON dbo.DpopKit_GetWithDpop TO [YourAppRole];  -- EDIT
-- Everything runs as the SQL Server service account: it needs read access to the key
-- file, write access to the session log folder, and outbound HTTPS to the endpoints.

SELECT dbo.DpopKit_Version() AS dpopkit_version;   -- fails here if dpopkit.dll is not found
GO
