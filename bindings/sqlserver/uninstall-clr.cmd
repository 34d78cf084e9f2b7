@echo off
rem uninstall-clr.cmd: removes what install-clr.cmd installed. EDIT the values as there.
setlocal
set CLR_DIR=C:\dpopkit
set DATABASE=YourDb
set SQLSERVER=.
rem The procedures and functions, the assembly, the key/login of install.sql option (A):
sqlcmd -S %SQLSERVER% -E -b -i uninstall.sql || goto :fail
rem The trust install-clr.cmd added (the hash, or the key and login), computed from the same file:
if exist "%CLR_DIR%\untrust.sql" sqlcmd -S %SQLSERVER% -E -b -i "%CLR_DIR%\untrust.sql" || goto :fail
reg delete HKLM\SOFTWARE\dpopkit /v NativeDir /f >nul 2>&1
echo Removed. dpopkit.dll stays loaded in sqlservr.exe until the service restarts; delete it after that.
exit /b 0
:fail
echo uninstall-clr.cmd failed (see above). 1>&2
exit /b 1
