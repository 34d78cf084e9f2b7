@echo off
rem install-clr.cmd: the SQL CLR route on Windows, step by step (run as an administrator
rem on the SQL Server host, from this folder). EDIT the four values below.
rem   1. builds DpopKitClr.dll (.NET Framework 4.x csc.exe, C# 5) signed with a strong-name key
rem   2. puts dpopkit.dll in NATIVE_DIR and records NATIVE_DIR in HKLM\SOFTWARE\dpopkit\NativeDir,
rem      where DpopKit.NativeLoader loads it from by full path before the first P/Invoke
rem   3. ClrInstall.exe computes the assembly's SHA2_512 (TRUST=hash: sp_add_trusted_assembly)
rem      or checks its signature (TRUST=key: asymmetric key + login with UNSAFE ASSEMBLY)
rem      and writes trust.sql: trust + CREATE ASSEMBLY ... PERMISSION_SET = UNSAFE
rem   4. runs trust.sql, then install.sql (the procedures and functions) with sqlcmd
setlocal
rem EDIT install.sql too (its paths and database name), as its header says.
set CLR_DIR=C:\dpopkit
set NATIVE_DIR=C:\dpopkit\bin
set DATABASE=YourDb
set TRUST=key
set SQLSERVER=.
set CSC=%WINDIR%\Microsoft.NET\Framework64\v4.0.30319\csc.exe

if not exist "%CLR_DIR%" mkdir "%CLR_DIR%" || goto :fail
if not exist "%NATIVE_DIR%" mkdir "%NATIVE_DIR%" || goto :fail
copy /y dpopkit.dll "%NATIVE_DIR%\dpopkit.dll" >nul || goto :fail
reg add HKLM\SOFTWARE\dpopkit /v NativeDir /t REG_SZ /d "%NATIVE_DIR%" /f >nul || goto :fail

rem The signing key: made once, kept private (whoever has it can sign trusted code).
if "%TRUST%"=="key" if not exist "%CLR_DIR%\DpopKitClr.snk" (
  where sn >nul 2>&1 || (echo sn.exe not found: run from a Visual Studio / Windows SDK prompt, or set TRUST=hash & goto :fail)
  sn -k "%CLR_DIR%\DpopKitClr.snk" || goto :fail
)
set KEYFILE=
if "%TRUST%"=="key" set KEYFILE=/keyfile:"%CLR_DIR%\DpopKitClr.snk"
"%CSC%" /nologo /target:library /optimize %KEYFILE% /r:System.Data.dll /out:"%CLR_DIR%\DpopKitClr.dll" DpopKit.cs NativeMethods.g.cs || goto :fail
"%CSC%" /nologo /out:"%CLR_DIR%\ClrInstall.exe" ClrInstall.cs || goto :fail
"%CLR_DIR%\ClrInstall.exe" install "%CLR_DIR%\DpopKitClr.dll" %TRUST% %DATABASE% > "%CLR_DIR%\trust.sql" || goto :fail
"%CLR_DIR%\ClrInstall.exe" uninstall "%CLR_DIR%\DpopKitClr.dll" %TRUST% %DATABASE% > "%CLR_DIR%\untrust.sql" || goto :fail

rem install.sql skips the key and the assembly that trust.sql already made.
sqlcmd -S %SQLSERVER% -E -b -i "%CLR_DIR%\trust.sql" || goto :fail
sqlcmd -S %SQLSERVER% -E -b -d %DATABASE% -i install.sql || goto :fail
echo dpopkit CLR route installed: DpopKitClr in %DATABASE%, dpopkit.dll from %NATIVE_DIR%.
echo Try: sqlcmd -S %SQLSERVER% -E -d %DATABASE% -Q "SELECT dbo.DpopKit_Version()"
exit /b 0
:fail
echo install-clr.cmd failed (see above). 1>&2
exit /b 1
