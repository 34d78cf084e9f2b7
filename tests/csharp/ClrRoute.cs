// The CLR route's native loader (bindings/sqlserver/DpopKit.cs NativeLoader) under mono:
//   ClrRoute.exe ok DIR      DPOPKIT_NATIVE_DIR=DIR: the library is loaded from DIR by full
//                            path before the first P/Invoke, and calls work
//   ClrRoute.exe refused     DPOPKIT_NATIVE_DIR names a directory without the library (or a
//                            relative one): every call fails with a text naming the directory
//                            and the setting, never falling back to another copy
// Driven by tests/csharp_bindings.rs. Prints one line per check and "REACHED END" at the end.
using System;
using DpopKit;

internal static class ClrRoute
{
    private static int failed;

    private static void Check(bool ok, string what)
    {
        Console.WriteLine((ok ? "ok - " : "FAIL - ") + what);
        if (!ok) failed++;
    }

    private static int Main(string[] args)
    {
        if (args[0] == "ok")
        {
            string want = System.IO.Path.Combine(args[1], NativeLoader.FileName);
            Check(NativeLoader.ConfiguredDirectory() == args[1], "the configured directory is DPOPKIT_NATIVE_DIR");
            Check(NativeLoader.LoadedFrom == want, "loaded from " + NativeLoader.LoadedFrom);
            using (var k = new PrivateKey())
                Check(k.Generate(), "a call after the load works");
            Check(DpopKitLibrary.Version.Length > 0, "version " + DpopKitLibrary.Version);
        }
        else
        {
            string dir = NativeLoader.ConfiguredDirectory();
            for (int i = 0; i < 2; i++)
            {
                try
                {
                    using (var k = new PrivateKey()) { }
                    Check(false, "a call with a bad native directory fails");
                }
                catch (DllNotFoundException e)
                {
                    Console.WriteLine("  " + e.Message);
                    Check(e.Message.Contains(dir) && e.Message.Contains(NativeLoader.EnvironmentVariable), "attempt " + (i + 1) + ": DllNotFoundException naming the directory and the setting");
                }
            }
            try
            {
                string v = DpopKitLibrary.Version;
                Check(false, "DpopKitLibrary.Version fails too (got " + v + ")");
            }
            catch (DllNotFoundException) { Check(true, "DpopKitLibrary.Version fails too: no fallback to the library on LD_LIBRARY_PATH"); }
        }
        if (failed == 0) Console.WriteLine("REACHED END");
        return failed == 0 ? 0 : 1;
    }
}
