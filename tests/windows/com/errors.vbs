' The error paths a T-SQL caller meets, late-bound as sp_OA* calls them:
'  - a missing key file and a 1024-bit RSA key: LoadAnyFormatFile returns 0 and LastErrorText names
'    the problem;
'  - a dead token endpoint: QuickGetStr gives "", LastMethodSuccess 0, LastStatus 0 and a
'    text that says why and holds no secret (nor does any raised error);
'  - COM misuse: a wrong argument type or count, an unknown member, a read of the write-only
'    AuthToken, a non-key object for SetDPoPKey: an error, never a crash.
'   cscript //nologo errors.vbs MISSING_KEY RSA_KEY GOOD_KEY DEAD_TOKEN_URL API_URL
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
' Runs after a statement that must raise: want = the Err.Number(s) accepted.
Sub Raised(want1, want2, what)
  Dim n : n = Err.Number
  If n = want1 Or n = want2 Then
    WScript.Echo "ok: " & what & " (error " & n & " / &H" & Hex(n) & ")"
    If InStr(Err.Description, "s3cr3t") > 0 Then
      WScript.Echo "FAILED: the error's description holds the secret"
      failures = failures + 1
    End If
  Else
    WScript.Echo "FAILED: " & what & ": want error " & want1 & ", got " & n & " (&H" & Hex(n) & ") " & Err.Description
    failures = failures + 1
  End If
  Err.Clear
End Sub

Dim a : Set a = WScript.Arguments
Dim missingKey, rsaKey, goodKey, deadUrl, apiUrl
missingKey = a(0) : rsaKey = a(1) : goodKey = a(2) : deadUrl = a(3) : apiUrl = a(4)
Const SECRET = "s3cr3t-COM-7781"

Dim key, r, t
Set key = CreateObject("DpopKit.PrivateKey")
r = key.LoadAnyFormatFile(missingKey, "")
t = key.LastErrorText
WScript.Echo "missing key file: " & t
Check r = 0 And key.LastMethodSuccess = 0, "a missing key file: LoadAnyFormatFile = 0, LastMethodSuccess = 0"
Check InStr(t, "no-such-key.pem") > 0, "its LastErrorText names the file"
Check key.LastErrorCode <> 0, "and a code (" & key.LastErrorCode & ")"

r = key.LoadAnyFormatFile(rsaKey, "")
t = key.LastErrorText
WScript.Echo "RSA key: " & t
Check r = 0, "a 1024-bit RSA key: LoadAnyFormatFile = 0"
Check InStr(t, "RSA") > 0, "its LastErrorText says RSA"

r = key.LoadAnyFormatFile(goodKey)
Check r = 1 And key.LastMethodSuccess = 1, "the password is optional: LoadAnyFormatFile(path) = 1"
Check key.LastErrorText = "" Or InStr(key.LastErrorText, "error") = 0, "a success leaves no error text"

Dim json, http, body
Set json = CreateObject("DpopKit.JsonObject")
json.UpdateString "client_secret", SECRET
json.UpdateString "client_id", "m2m.dpop"
json.UpdateString "token_endpoint", deadUrl
json.UpdateString "scope", "api"
Set http = CreateObject("DpopKit.Http")
http.SetTimeouts 2000, 5000
Check http.SetDPoPKey(key) = 1, "SetDPoPKey"
http.AuthToken = json.Emit()
body = "unchanged"
body = http.QuickGetStr(apiUrl)
t = http.LastErrorText
WScript.Echo "dead token endpoint: " & t
Check body = "", "a dead token endpoint: QuickGetStr returns an empty string"
Check http.LastMethodSuccess = 0, "LastMethodSuccess = 0"
Check http.LastStatus = 0, "LastStatus = 0 (no answer)"
Check InStr(LCase(t), "token") > 0 And (InStr(LCase(t), "refused") > 0 Or InStr(LCase(t), "connect") > 0), "the text says the token endpoint could not be reached"
Check InStr(t, SECRET) = 0 And InStr(http.LastResponseHeader, SECRET) = 0 And InStr(http.LastResponseBody, SECRET) = 0, "no secret in the text, headers or body"

' COM misuse (the errors VBScript shows for the HRESULTs: 13 / 450 / 438).
r = key.LoadAnyFormatFile()
Raised 450, &H8002000E, "no arguments: DISP_E_BADPARAMCOUNT"
r = key.LoadAnyFormatFile(goodKey, "", "extra")
Raised 450, &H8002000E, "3 arguments for 2: DISP_E_BADPARAMCOUNT"
r = http.SetDPoPKey(json)
Raised 13, &H80020005, "SetDPoPKey(a JsonObject): DISP_E_TYPEMISMATCH"
r = http.SetDPoPKey("not an object")
Raised 13, &H80020005, "SetDPoPKey(a string): DISP_E_TYPEMISMATCH"
r = http.SetTimeouts("soon", 1000)
Raised 13, &H80020005, "SetTimeouts(a word): DISP_E_TYPEMISMATCH"
r = http.SetTimeouts(-1, 1000)
Raised 13, &H80020005, "SetTimeouts(-1): DISP_E_TYPEMISMATCH"
r = json.UpdateString("name", Null)
Raised 13, &H80020005, "UpdateString(name, Null): DISP_E_TYPEMISMATCH"
r = json.UpdateString("name", Array(1, 2))
Raised 13, &H80020005, "UpdateString(name, an array): DISP_E_TYPEMISMATCH"
r = http.NoSuchMember()
Raised 438, &H80020006, "an unknown member: DISP_E_UNKNOWNNAME"
r = http.AuthToken
Raised 438, &H80020003, "reading the write-only AuthToken: DISP_E_MEMBERNOTFOUND"
http.LastStatus = 5
Raised 438, &H80020003, "writing the read-only LastStatus: DISP_E_MEMBERNOTFOUND"

' Coercions sp_OA and VBScript rely on: numbers as text, Booleans, variables by reference.
Dim ms : ms = "3000"
Check http.SetTimeouts(ms, 10000) = 1, "SetTimeouts(""3000"", 10000): a numeric string is coerced"
Check http.SetFollowRedirects(True) = 1, "SetFollowRedirects(True)"
Dim nm, vl : nm = "X-By-Ref" : vl = "v"
Check http.SetRequestHeader(nm, vl) = 1, "variables arrive VT_BYREF|VT_VARIANT and are read through"
' The names are case-insensitive.
Check HTTP.lastmethodsuccess = 1 And key.GETJWKTHUMBPRINT() <> "", "member names are case-insensitive"
' Null for an optional string: the C layer's NULL (here: stop logging).
Check http.SetSessionLogFilename(Null) = 1, "SetSessionLogFilename(Null) = 1"
Check VarType(key.Version) = vbString And key.Version <> "", "Version: " & key.Version

If failures = 0 Then
  WScript.Echo "REACHED END"
  WScript.Quit 0
End If
WScript.Echo failures & " failed"
WScript.Quit 1
