' After regsvr32 /u: CreateObject("DpopKit.Http") must fail (error 429).
Option Explicit
On Error Resume Next
Dim h
Set h = CreateObject("DpopKit.Http")
If Err.Number = 0 Then
  WScript.Echo "FAILED: DpopKit.Http can still be created"
  WScript.Quit 1
End If
WScript.Echo "ok: CreateObject fails with error " & Err.Number & " (&H" & Hex(Err.Number) & ")"
WScript.Echo "REACHED END"
WScript.Quit 0
