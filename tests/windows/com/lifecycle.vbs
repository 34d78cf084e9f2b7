' 1,000 objects of each class created, used and released: the DLL's live handles come
' back to what they were (dpopkit_live_handles through the LiveHandles member).
'   cscript //nologo lifecycle.vbs KEY_FILE
Option Explicit
On Error Resume Next
Dim failures : failures = 0
Sub Check(cond, what)
  If Err.Number <> 0 Then
    WScript.Echo "FAILED: " & what & " (error " & Hex(Err.Number) & ": " & Err.Description & ")"
    failures = failures + 1
    Err.Clear
  ElseIf cond Then
    WScript.Echo "ok: " & what
  Else
    WScript.Echo "FAILED: " & what
    failures = failures + 1
  End If
End Sub
Dim keyPath : keyPath = WScript.Arguments(0)
Dim probe, base, i, k, j, h, during
Set probe = CreateObject("DpopKit.JsonObject")
base = probe.LiveHandles
Check base = 1, "one live handle before (the probe): " & base
For i = 1 To 1000
  Set k = CreateObject("DpopKit.PrivateKey")
  Set j = CreateObject("DpopKit.JsonObject")
  Set h = CreateObject("DpopKit.Http")
  If k.LoadAnyFormatFile(keyPath, "") <> 1 Or j.UpdateString("n", CStr(i)) <> 1 Or h.SetDPoPKey(k) <> 1 Then
    Check False, "iteration " & i
    Exit For
  End If
  If i = 500 Then during = probe.LiveHandles
  Set h = Nothing
  Set j = Nothing
  Set k = Nothing
Next
Check Err.Number = 0, "1,000 x 3 objects created and used"
Check during = base + 3, "while 3 are alive: " & during & " live handles"
Check probe.LiveHandles = base, "after releasing them: " & probe.LiveHandles & " live handles (want " & base & ")"
' SetDPoPKey keeps the key itself (not its handle): releasing the PrivateKey object frees its
' handle, the Http still holds the key.
Set k = CreateObject("DpopKit.PrivateKey")
k.Generate
Set h = CreateObject("DpopKit.Http")
h.SetDPoPKey k
Check h.LastMethodSuccess = 1 And probe.LiveHandles = base + 2, "a key and an Http: " & probe.LiveHandles
Set k = Nothing
Check probe.LiveHandles = base + 1, "the key object released, the Http alive: " & probe.LiveHandles
Set h = Nothing
Check probe.LiveHandles = base, "and both gone after the Http: " & probe.LiveHandles
If failures = 0 Then
  WScript.Echo "REACHED END"
  WScript.Quit 0
End If
WScript.Echo failures & " failed"
WScript.Quit 1
