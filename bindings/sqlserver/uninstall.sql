/*
 * uninstall.sql: removes what install.sql created. EDIT the database name.
 * dpopkit.dll stays loaded in sqlservr.exe until the service restarts; delete or replace
 * the file after that.
 */
USE [YourDb];                                                  -- EDIT
GO
DROP PROCEDURE IF EXISTS dbo.CallApiWithDpop;                  -- from usage.sql
DROP PROCEDURE IF EXISTS dbo.DpopKit_GetWithDpop;
DROP FUNCTION  IF EXISTS dbo.DpopKit_Get;
DROP FUNCTION  IF EXISTS dbo.DpopKit_GetCached;
DROP PROCEDURE IF EXISTS dbo.DpopKit_RequestCached;
DROP PROCEDURE IF EXISTS dbo.DpopKit_Request;
DROP PROCEDURE IF EXISTS dbo.DpopKit_RequestBinary;
DROP PROCEDURE IF EXISTS dbo.CreateOrderWithDpop;             -- from usage.sql
DROP PROCEDURE IF EXISTS dbo.DpopKit_ClearCache;
DROP FUNCTION  IF EXISTS dbo.DpopKit_Version;
DROP PROCEDURE IF EXISTS dbo.DpopKit_Preload;
IF EXISTS (SELECT 1 FROM sys.assemblies WHERE name = N'DpopKitClr')
    DROP ASSEMBLY DpopKitClr;
GO

USE master;
GO
-- Trust option (A) of install.sql:
IF EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'DpopKitSigningLogin')
    DROP LOGIN DpopKitSigningLogin;
IF EXISTS (SELECT 1 FROM sys.asymmetric_keys WHERE name = N'DpopKitSigningKey')
    DROP ASYMMETRIC KEY DpopKitSigningKey;
GO
-- Trust option (B): EXEC sys.sp_drop_trusted_assembly @hash;  (see sys.trusted_assemblies)
-- Trust option (C): ALTER DATABASE [YourDb] SET TRUSTWORTHY OFF;
-- Leave 'clr enabled' on if other assemblies use it; otherwise:
-- EXEC sp_configure 'clr enabled', 0; RECONFIGURE;
GO
