' The seed procedure, transcribed call for call from its T-SQL (sp_OACreate / sp_OAMethod /
' sp_OASetProperty / sp_OAGetProperty) with only the three ProgIDs changed, late-bound
' through IDispatch exactly as sp_OA* drives it (GetIDsOfNames, then Invoke).
' Several Http objects in turn, each made as the seed makes one: the token is fetched once.
'   cscript //nologo seed.vbs KEY_FILE KEY_PASSWORD TOKEN_URL API_URL SESSION_LOG N_HTTP
' Wine's cscript exits 0 after a runtime error: the harness requires the last line.
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

Dim a : Set a = WScript.Arguments
Dim keyPath, keyPass, tokenUrl, apiUrl, logPath, n
keyPath = a(0) : keyPass = a(1) : tokenUrl = a(2) : apiUrl = a(3) : logPath = a(4) : n = CInt(a(5))

Dim i, privKey, json, http, success, sTmp0, iTmp0
For i = 1 To n
  ' EXEC @hr = sp_OACreate 'Chilkat.PrivateKey', @privKey OUT
  Set privKey = CreateObject("DpopKit.PrivateKey")
  Check IsObject(privKey), "run " & i & ": sp_OACreate DpopKit.PrivateKey"
  ' EXEC sp_OAMethod @privKey, 'LoadAnyFormatFile', @success OUT, @keyPath, @keyPass
  success = privKey.LoadAnyFormatFile(keyPath, keyPass)
  Check success = 1, "run " & i & ": LoadAnyFormatFile = 1"
  If success = 0 Then WScript.Echo privKey.LastErrorText

  ' EXEC @hr = sp_OACreate 'Chilkat.JsonObject', @json OUT
  Set json = CreateObject("DpopKit.JsonObject")
  ' EXEC sp_OAMethod @json, 'UpdateString', @success OUT, 'client_secret', '...'
  success = json.UpdateString("client_secret", "secret")
  Check success = 1, "run " & i & ": UpdateString client_secret"
  success = json.UpdateString("client_id", "m2m.dpop")
  Check success = 1, "run " & i & ": UpdateString client_id"
  success = json.UpdateString("token_endpoint", tokenUrl)
  Check success = 1, "run " & i & ": UpdateString token_endpoint"
  success = json.UpdateString("scope", "api")
  Check success = 1, "run " & i & ": UpdateString scope"

  ' EXEC @hr = sp_OACreate 'Chilkat.Http', @http OUT
  Set http = CreateObject("DpopKit.Http")
  ' EXEC sp_OAMethod @http, 'SetDPoPKey', @success OUT, @privKey
  success = http.SetDPoPKey(privKey)
  Check success = 1, "run " & i & ": SetDPoPKey(privKey) = 1"
  ' EXEC sp_OAMethod @json, 'Emit', @sTmp0 OUT
  sTmp0 = json.Emit()
  Check InStr(sTmp0, """client_id"":""m2m.dpop""") > 0, "run " & i & ": Emit"
  ' EXEC sp_OASetProperty @http, 'AuthToken', @sTmp0
  http.AuthToken = sTmp0
  Check http.LastMethodSuccess = 1, "run " & i & ": AuthToken = json.Emit()"
  ' EXEC sp_OASetProperty @http, 'SessionLogFilename', '...'
  http.SessionLogFilename = logPath
  Check http.LastMethodSuccess = 1 And http.SessionLogFilename = logPath, "run " & i & ": SessionLogFilename"
  ' EXEC sp_OAMethod @http, 'QuickGetStr', @sTmp0 OUT, @apiUrl
  sTmp0 = http.QuickGetStr(apiUrl)
  ' EXEC sp_OAGetProperty @http, 'LastMethodSuccess', @iTmp0 OUT
  iTmp0 = http.LastMethodSuccess
  Check iTmp0 = 1, "run " & i & ": QuickGetStr: LastMethodSuccess = 1"
  If iTmp0 = 0 Then WScript.Echo http.LastErrorText
  ' EXEC sp_OAGetProperty @http, 'LastStatus', @iTmp0 OUT
  iTmp0 = http.LastStatus
  Check iTmp0 = 200, "run " & i & ": LastStatus = 200 (got " & iTmp0 & ")"
  Check InStr(sTmp0, "m2m.dpop") > 0, "run " & i & ": the body names the client"
  Check VarType(http.LastStatus) = vbLong And VarType(success) = vbLong, "run " & i & ": 1/0 and statuses are Longs (T-SQL int)"
  ' EXEC @hr = sp_OADestroy @http / @json / @privKey
  Set http = Nothing
  Set json = Nothing
  Set privKey = Nothing
Next

If failures = 0 Then
  WScript.Echo "REACHED END"
  WScript.Quit 0
End If
WScript.Echo failures & " failed"
WScript.Quit 1
