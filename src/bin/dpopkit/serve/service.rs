//! `dpopkit serve --windows-service`: the gateway as a Windows service. The Service Control
//! Manager starts `dpopkit.exe serve --config FILE --windows-service` (the service's binPath);
//! the process hands its main thread to the SCM (`StartServiceCtrlDispatcherW`), whose
//! ServiceMain runs the gateway and reports START_PENDING, RUNNING once it listens, and
//! STOPPED when it has ended. Stop and system shutdown controls stop it gracefully: it stops
//! accepting and lets the requests in flight finish, as SIGTERM does on Unix.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use windows_sys::Win32::Foundation::{ERROR_CALL_NOT_IMPLEMENTED, NO_ERROR};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP, SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN,
    SERVICE_CONTROL_STOP, SERVICE_RUNNING, SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STATUS_CURRENT_STATE, SERVICE_STOP_PENDING,
    SERVICE_STOPPED, SERVICE_TABLE_ENTRYW, SERVICE_WIN32_OWN_PROCESS, SetServiceStatus, StartServiceCtrlDispatcherW,
};
use windows_sys::core::PWSTR;

type Job = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// What ServiceMain runs (set once, before the dispatcher starts).
static JOB: Mutex<Option<Job>> = Mutex::new(None);
static STATUS: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static CHECKPOINT: AtomicU32 = AtomicU32::new(0);
/// The error the job ended with, for the caller of [`run`].
static OUTCOME: Mutex<Option<String>> = Mutex::new(None);

static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`run`] was called (the dispatcher is started once per process).
pub fn started() -> bool {
    STARTED.load(Ordering::SeqCst)
}

/// The wait the stop may take (requests in flight finish within their routes' timeouts).
const STOP_WAIT_MS: u32 = 90_000;

/// Runs `job` (the gateway) as the service the SCM started; returns when it has stopped.
/// Not started by the SCM: an error that says so, at once.
pub fn run(job: Job) -> Result<(), String> {
    STARTED.store(true, Ordering::SeqCst);
    *JOB.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
    // SERVICE_WIN32_OWN_PROCESS: the name is not looked at, but must not be null.
    let mut name: Vec<u16> = "dpopkit-gateway\0".encode_utf16().collect();
    let table = [
        SERVICE_TABLE_ENTRYW { lpServiceName: name.as_mut_ptr(), lpServiceProc: Some(service_main) },
        SERVICE_TABLE_ENTRYW { lpServiceName: null_mut(), lpServiceProc: None },
    ];
    // SAFETY: the table ends with a null entry and lives until the dispatcher returns (after
    // the service has stopped); service_main is a valid ServiceMain.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "--windows-service: not started by the Service Control Manager ({e}); it belongs in the binPath of a service \
             (sc.exe create ... binPath= \"C:\\dpopkit\\dpopkit.exe serve --config C:\\dpopkit\\gateway.toml --windows-service\"); \
             in a console, run without it"
        ));
    }
    match OUTCOME.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Tells the SCM that the gateway listens (called once it does).
pub fn report_running() {
    set_status(SERVICE_RUNNING, 0, 0);
}

fn set_status(state: SERVICE_STATUS_CURRENT_STATE, exit: u32, wait_ms: u32) {
    let handle = STATUS.load(Ordering::SeqCst);
    if handle.is_null() {
        return;
    }
    let pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: if state == SERVICE_RUNNING { SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN } else { 0 },
        // ERROR_SERVICE_SPECIFIC_ERROR (1066) with our code: "the gateway failed" (see its log).
        dwWin32ExitCode: if exit == 0 { NO_ERROR } else { 1066 },
        dwServiceSpecificExitCode: exit,
        dwCheckPoint: if pending { CHECKPOINT.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 },
        dwWaitHint: wait_ms,
    };
    // SAFETY: handle came from RegisterServiceCtrlHandlerExW; status is a valid struct.
    unsafe { SetServiceStatus(handle, &status) };
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut PWSTR) {
    let name: Vec<u16> = "dpopkit-gateway\0".encode_utf16().collect();
    // SAFETY: name is NUL-terminated; handler is a valid HandlerEx for the process's life.
    let handle = unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(handler), null_mut()) };
    if handle.is_null() {
        return;
    }
    STATUS.store(handle, Ordering::SeqCst);
    set_status(SERVICE_START_PENDING, 0, 30_000);
    let job = JOB.lock().unwrap_or_else(|p| p.into_inner()).take();
    // No panic leaves this function (it is called by the SCM's dispatcher thread).
    let result = match job {
        Some(job) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
            .unwrap_or_else(|_| Err("the gateway stopped unexpectedly (a bug: please report it)".into())),
        None => Err("the service started twice".into()),
    };
    let exit = u32::from(result.is_err());
    if let Err(e) = result {
        if !e.is_empty() {
            eprintln!("dpopkit serve: {e}");
        }
        *OUTCOME.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    set_status(SERVICE_STOPPED, exit, 0);
}

unsafe extern "system" fn handler(control: u32, _event: u32, _data: *mut c_void, _context: *mut c_void) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            set_status(SERVICE_STOP_PENDING, 0, STOP_WAIT_MS);
            super::server::request_shutdown();
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

/// `--service-log FILE`: what the gateway writes to stderr (its start line, the access log,
/// errors) is appended to FILE, since a service has no console. Opened before the service
/// starts, so that a file that cannot be written is an error at once.
pub fn log_to(path: &std::path::Path) -> Result<(), String> {
    use std::os::windows::io::IntoRawHandle;
    use windows_sys::Win32::System::Console::{STD_ERROR_HANDLE, SetStdHandle};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("--service-log: cannot open '{}' for appending: {e}", path.display()))?;
    let handle = file.into_raw_handle();
    // SAFETY: a valid handle this process owns from now on (the process's stderr).
    if unsafe { SetStdHandle(STD_ERROR_HANDLE, handle) } == 0 {
        return Err(format!("--service-log: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
