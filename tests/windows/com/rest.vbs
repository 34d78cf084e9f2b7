' The REST surface through IDispatch: a request header (echoed back), a POST answered 201
' with LastStatusText Created and Location by name, all headers, a 404, bytes.
'   cscript //nologo rest.vbs KEY_FILE TOKEN_URL RS_ORIGIN
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
Dim keyPath, tokenUrl, rs
keyPath = a(0) : tokenUrl = a(1) : rs = a(2)

Dim key, json, http, body, hdrs, loc
Set key = CreateObject("DpopKit.PrivateKey")
Check key.LoadAnyFormatFile(keyPath, "") = 1, "key"
Set json = CreateObject("DpopKit.JsonObject")
Check json.Load("{""client_id"":""m2m.dpop"",""client_secret"":""secret"",""scope"":""api""}") = 1, "JsonObject.Load"
Check json.UpdateString("token_endpoint", tokenUrl) = 1, "UpdateString"
Check json.StringOf("client_id") = "m2m.dpop", "StringOf"
Set http = CreateObject("DpopKit.Http")
Check http.SetDPoPKey(key) = 1, "SetDPoPKey"
Check http.SetAuthToken(json.Emit()) = 1, "SetAuthToken"

Check http.SetRequestHeader("X-Correlation-Id", "c-from-vbs") = 1, "SetRequestHeader"
Check http.SetRequestHeader("Authorization", "Bearer x") = 0, "Authorization is refused (0)"
Check InStr(http.LastErrorText, "Authorization") > 0, "... and LastErrorText says which header"
body = http.QuickGetStr(rs & "/api/echo-headers")
Check http.LastStatus = 200, "echo-headers: 200"
Check InStr(body, "c-from-vbs") > 0, "the request header reached the API"

Check http.SetRequestHeader("Idempotency-Key", "idem-vbs-1") = 1, "Idempotency-Key"
body = http.QuickRequestStr("POST", rs & "/api/items", "application/json", "{""item"":""x""}")
Check http.LastMethodSuccess = 1, "POST: LastMethodSuccess = 1"
Check http.LastStatus = 201, "POST: LastStatus = 201 (got " & http.LastStatus & ")"
Check http.LastStatusText = "Created", "LastStatusText = Created (got " & http.LastStatusText & ")"
loc = http.LastResponseHeaderValue("location")
Check Left(loc, 11) = "/api/items/", "Location by name (lower case): " & loc
Check http.LastResponseHeaderValue("LOCATION") = loc, "header names are case-insensitive"
hdrs = http.LastResponseHeader
Check InStr(LCase(hdrs), "location: /api/items/") > 0 And InStr(LCase(hdrs), "etag:") > 0, "all headers: Location and ETag among them"
Check InStr(body, "idem-vbs-1") > 0 Or InStr(body, "item") > 0, "the POST's body came back"
Check http.LastResponseHeaderValue("X-Nope") = "" And http.LastMethodSuccess = 0, "an absent header: empty, LastMethodSuccess 0"
Check http.RemoveRequestHeader("Idempotency-Key") = 1, "RemoveRequestHeader"

body = http.QuickGetStr(rs & "/nope")
Check http.LastStatus = 404, "a 404: LastStatus = 404 (got " & http.LastStatus & ")"
Check http.LastMethodSuccess = 0 And body = "", "a 404: QuickGetStr returns empty, LastMethodSuccess 0"
Check http.LastStatusText = "Not Found", "LastStatusText = Not Found"
Check InStr(http.LastResponseBody, "not_found") > 0, "LastResponseBody holds the error document"
Check InStr(http.LastErrorText, "404") > 0, "LastErrorText names the status"

Dim bytes
bytes = http.QuickGetBytes(rs & "/api/bytes")
Check http.LastStatus = 200, "bytes: 200"
Check VarType(bytes) = (vbArray + vbByte), "QuickGetBytes is a byte array (VarType " & VarType(bytes) & ")"
bytes = http.LastResponseBodyBytes
Check VarType(bytes) = (vbArray + vbByte), "LastResponseBodyBytes is a byte array"
' The byte array passes back in unchanged (QuickRequestBytes with a byte body).
Dim echoed
echoed = http.QuickRequestBytes("POST", rs & "/api/echo-bytes", "application/octet-stream", bytes)
Check http.LastStatus = 200 And VarType(echoed) = (vbArray + vbByte), "QuickRequestBytes(byte array) = 200"
Check http.ClearRequestHeaders() = 1, "ClearRequestHeaders"
body = http.QuickRequestStr("GET", rs & "/api/test", Null, Null)
Check http.LastStatus = 200 And InStr(body, "m2m.dpop") > 0, "QuickRequestStr GET with Null content type and body"

If failures = 0 Then
  WScript.Echo "REACHED END"
  WScript.Quit 0
End If
WScript.Echo failures & " failed"
WScript.Quit 1
