//! The C entry points, for driver managers that load this library by path: adbc_ffi's
//! exporter, with what it leaves out of ADBC 1.1 filled in here.
//!
//! * `ErrorFromArrayStream`: a result set's error keeps its status, SQLSTATE and details
//!   when it comes while the stream is read (a division by zero at row 300,000, a cancel, a
//!   server that dies), instead of only a message. Every stream `StatementExecuteQuery` and
//!   `ConnectionReadPartition` hand out is wrapped in one of ours, which keeps the ADBC error
//!   of its last failed `get_next` for the driver manager to ask for.
//! * `StatementExecuteQuery`'s rows affected, which the exporter always gives as -1.
//!
//! Both pass through thread-locals: the exporter calls the driver's Rust code on the calling
//! thread, synchronously, and our wrapper reads what that code left there right after.

#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

use adbc_core::constants::{ADBC_ERROR_VENDOR_CODE_PRIVATE_DATA, ADBC_STATUS_OK};
use adbc_core::error::{AdbcStatusCode, Error, Status};
use adbc_core::options::AdbcVersion;
use adbc_ffi::{FFI_AdbcConnection, FFI_AdbcDriver, FFI_AdbcError, FFI_AdbcStatement, FFIDriver};

thread_local! {
    /// The error the driver's last failed batch read on this thread gave.
    static STREAM_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
    /// The rows the last statement executed on this thread changed, when it said.
    static ROWS_AFFECTED: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Keeps `e`, the error a result set's batch read is failing with, for the stream wrapper.
pub(crate) fn note_stream_error(e: &Error) {
    STREAM_ERROR.with(|slot| *slot.borrow_mut() = Some(e.clone()));
}

/// Keeps the rows a statement changed, for `StatementExecuteQuery`'s out parameter.
pub(crate) fn note_rows_affected(rows: i64) {
    ROWS_AFFECTED.with(|slot| slot.set(Some(rows)));
}

/// The C Data Interface's `ArrowArrayStream`, field by field (arrow-rs keeps its fields
/// private). Schemas and arrays pass through untouched, so they stay opaque here.
#[repr(C)]
struct RawStream {
    get_schema: Option<unsafe extern "C" fn(*mut RawStream, *mut c_void) -> c_int>,
    get_next: Option<unsafe extern "C" fn(*mut RawStream, *mut c_void) -> c_int>,
    get_last_error: Option<unsafe extern "C" fn(*mut RawStream) -> *const c_char>,
    release: Option<unsafe extern "C" fn(*mut RawStream)>,
    private_data: *mut c_void,
}

/// Our stream's private data: the stream it wraps, and the ADBC error of its last failed
/// `get_next`.
struct Wrapped {
    inner: RawStream,
    error: Option<(FFI_AdbcError, AdbcStatusCode)>,
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        if let Some(release) = self.inner.release {
            // SAFETY: `inner` is a live stream this wrapper owns (moved out of the `out`
            // parameter it was exported into); release is called once, here.
            unsafe { release(&mut self.inner) };
        }
    }
}

/// `stream`'s private data when it is one of ours.
///
/// # Safety
/// `stream` is null or points to a valid `ArrowArrayStream`.
unsafe fn wrapped<'a>(stream: *mut RawStream) -> Option<&'a mut Wrapped> {
    // SAFETY: as the caller promises; a stream released by us has release None.
    let stream = unsafe { stream.as_mut() }?;
    // Our release callback marks our streams (as the driver manager marks its own). Both
    // addresses are taken in this crate, of a function that is neither generic nor inlined.
    let ours: unsafe extern "C" fn(*mut RawStream) = release_wrapped;
    if !stream
        .release
        .is_some_and(|f| std::ptr::fn_addr_eq(f, ours))
    {
        return None;
    }
    // SAFETY: our release callback marks the streams we made, whose private data is a
    // boxed `Wrapped` that lives until that callback runs.
    unsafe { (stream.private_data as *mut Wrapped).as_mut() }
}

unsafe extern "C" fn get_schema_wrapped(stream: *mut RawStream, out: *mut c_void) -> c_int {
    // SAFETY: the consumer passes the stream it got from us.
    match unsafe { wrapped(stream) } {
        Some(w) => match w.inner.get_schema {
            // SAFETY: forwarding to the wrapped stream's own callback, as it was made.
            Some(f) => unsafe { f(&mut w.inner, out) },
            None => libc_einval(),
        },
        None => libc_einval(),
    }
}

unsafe extern "C" fn get_next_wrapped(stream: *mut RawStream, out: *mut c_void) -> c_int {
    // SAFETY: the consumer passes the stream it got from us.
    let Some(w) = (unsafe { wrapped(stream) }) else {
        return libc_einval();
    };
    let Some(get_next) = w.inner.get_next else {
        return libc_einval();
    };
    STREAM_ERROR.with(|slot| slot.borrow_mut().take());
    // SAFETY: forwarding to the wrapped stream's own callback, as it was made.
    let code = unsafe { get_next(&mut w.inner, out) };
    if code != 0 {
        w.error = STREAM_ERROR.with(|slot| slot.borrow_mut().take()).map(|e| {
            let status = AdbcStatusCode::from(e.status);
            let mut ffi = FFI_AdbcError::try_from(e).unwrap_or_else(|nul| {
                FFI_AdbcError::try_from(Error::with_message_and_status(
                    nul.to_string(),
                    Status::Internal,
                ))
                .unwrap_or_default()
            });
            // Details (the server's fields) live in the private data: say so.
            ffi.vendor_code = ADBC_ERROR_VENDOR_CODE_PRIVATE_DATA;
            (ffi, status)
        });
    }
    code
}

unsafe extern "C" fn get_last_error_wrapped(stream: *mut RawStream) -> *const c_char {
    // SAFETY: the consumer passes the stream it got from us.
    match unsafe { wrapped(stream) } {
        Some(w) => match w.inner.get_last_error {
            // SAFETY: forwarding to the wrapped stream's own callback, as it was made.
            Some(f) => unsafe { f(&mut w.inner) },
            None => std::ptr::null(),
        },
        None => std::ptr::null(),
    }
}

#[inline(never)]
unsafe extern "C" fn release_wrapped(stream: *mut RawStream) {
    // SAFETY: the consumer passes the stream it got from us, once.
    let Some(stream) = (unsafe { stream.as_mut() }) else {
        return;
    };
    if stream.release.is_none() || stream.private_data.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `wrap`; released once (release is cleared below).
    drop(unsafe { Box::from_raw(stream.private_data as *mut Wrapped) });
    stream.private_data = std::ptr::null_mut();
    stream.release = None;
}

fn libc_einval() -> c_int {
    22
}

/// Wraps the stream just exported into `out` in one of ours.
///
/// # Safety
/// `out` is null or points to a stream that was just written (released or live).
unsafe fn wrap(out: *mut RawStream) {
    // SAFETY: as the caller promises.
    let Some(slot) = (unsafe { out.as_mut() }) else {
        return;
    };
    if slot.release.is_none() {
        return;
    }
    // SAFETY: moving the live stream out; `slot` is overwritten at once with ours, so it is
    // never released twice.
    let inner = unsafe { std::ptr::read(slot) };
    let private = Box::new(Wrapped { inner, error: None });
    *slot = RawStream {
        get_schema: Some(get_schema_wrapped),
        get_next: Some(get_next_wrapped),
        get_last_error: Some(get_last_error_wrapped),
        release: Some(release_wrapped),
        private_data: Box::into_raw(private) as *mut c_void,
    };
}

/// `AdbcErrorFromArrayStream`: the ADBC error of the stream's last failed `get_next`.
unsafe extern "C" fn error_from_array_stream(
    stream: *mut arrow_array::ffi_stream::FFI_ArrowArrayStream,
    status: *mut AdbcStatusCode,
) -> *const FFI_AdbcError {
    // SAFETY: the driver manager passes the stream this driver handed out.
    let Some(w) = (unsafe { wrapped(stream as *mut RawStream) }) else {
        return std::ptr::null();
    };
    match &w.error {
        Some((error, code)) => {
            // SAFETY: the driver manager passes a valid status pointer or null.
            if let Some(status) = unsafe { status.as_mut() } {
                *status = *code;
            }
            error
        }
        None => std::ptr::null(),
    }
}

/// The exporter's functions this module wraps, taken from its table once.
struct Exported {
    execute_query: unsafe extern "C" fn(
        *mut FFI_AdbcStatement,
        *mut arrow_array::ffi_stream::FFI_ArrowArrayStream,
        *mut i64,
        *mut FFI_AdbcError,
    ) -> AdbcStatusCode,
    read_partition: unsafe extern "C" fn(
        *mut FFI_AdbcConnection,
        *const u8,
        usize,
        *mut arrow_array::ffi_stream::FFI_ArrowArrayStream,
        *mut FFI_AdbcError,
    ) -> AdbcStatusCode,
}

fn exported() -> Option<&'static Exported> {
    static EXPORTED: std::sync::OnceLock<Option<Exported>> = std::sync::OnceLock::new();
    EXPORTED
        .get_or_init(|| {
            let table = <crate::Driver as FFIDriver>::ffi_driver();
            Some(Exported {
                execute_query: table.StatementExecuteQuery?,
                read_partition: table.ConnectionReadPartition?,
            })
        })
        .as_ref()
}

unsafe extern "C" fn statement_execute_query(
    statement: *mut FFI_AdbcStatement,
    out: *mut arrow_array::ffi_stream::FFI_ArrowArrayStream,
    rows_affected: *mut i64,
    error: *mut FFI_AdbcError,
) -> AdbcStatusCode {
    let Some(exported) = exported() else {
        return Status::Internal.into();
    };
    ROWS_AFFECTED.with(|slot| slot.set(None));
    // SAFETY: the driver manager's arguments, passed on as they came.
    let status = unsafe { (exported.execute_query)(statement, out, rows_affected, error) };
    if status == ADBC_STATUS_OK && !out.is_null() {
        // SAFETY: on success the exporter wrote a live stream into `out`.
        unsafe { wrap(out as *mut RawStream) };
        if let (Some(rows), false) = (ROWS_AFFECTED.with(Cell::take), rows_affected.is_null()) {
            // SAFETY: checked non-null; the caller's out parameter.
            unsafe { std::ptr::write_unaligned(rows_affected, rows) };
        }
    }
    status
}

unsafe extern "C" fn connection_read_partition(
    connection: *mut FFI_AdbcConnection,
    partition: *const u8,
    length: usize,
    out: *mut arrow_array::ffi_stream::FFI_ArrowArrayStream,
    error: *mut FFI_AdbcError,
) -> AdbcStatusCode {
    let Some(exported) = exported() else {
        return Status::Internal.into();
    };
    // SAFETY: the driver manager's arguments, passed on as they came.
    let status = unsafe { (exported.read_partition)(connection, partition, length, out, error) };
    if status == ADBC_STATUS_OK {
        // SAFETY: on success the exporter wrote a live stream into `out`.
        unsafe { wrap(out as *mut RawStream) };
    }
    status
}

/// The driver's function table: the exporter's, with this module's functions in place.
fn driver_table() -> Option<FFI_AdbcDriver> {
    exported()?;
    let mut table = <crate::Driver as FFIDriver>::ffi_driver();
    table.StatementExecuteQuery = Some(statement_execute_query);
    table.ConnectionReadPartition = Some(connection_read_partition);
    table.ErrorFromArrayStream = Some(error_from_array_stream);
    Some(table)
}

/// The driver's entry point (ADBC 1.1.0): fills in `driver`'s function table.
///
/// # Safety
/// `driver` points to an `AdbcDriver` of the version asked for, `error` to an `AdbcError` or
/// is null: what the ADBC C API asks of a driver manager.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PgarrowAdbcDriverInit(
    version: c_int,
    driver: *mut c_void,
    error: *mut FFI_AdbcError,
) -> AdbcStatusCode {
    let fail = |message: String, status: Status| {
        // SAFETY: `error` is the caller's, null or valid.
        unsafe { adbc_ffi::export_error(error, Error::with_message_and_status(message, status)) };
        AdbcStatusCode::from(status)
    };
    match AdbcVersion::try_from(version) {
        Ok(AdbcVersion::V110) => {}
        _ => {
            return fail(
                format!("pgarrow: ADBC version {version} is not supported (1.1.0 is)"),
                Status::NotImplemented,
            );
        }
    }
    if driver.is_null() {
        return fail(
            "pgarrow: the driver to initialize is null".to_owned(),
            Status::InvalidArguments,
        );
    }
    let Some(table) = driver_table() else {
        return fail(
            "pgarrow: the driver's function table is incomplete".to_owned(),
            Status::Internal,
        );
    };
    // SAFETY: checked non-null; an `AdbcDriver` of version 1.1.0, which this table is.
    unsafe { std::ptr::write_unaligned(driver as *mut FFI_AdbcDriver, table) };
    ADBC_STATUS_OK
}

/// The fallback entry point, for driver managers that look for no name of their own.
///
/// # Safety
/// As [`PgarrowAdbcDriverInit`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn AdbcDriverInit(
    version: c_int,
    driver: *mut c_void,
    error: *mut FFI_AdbcError,
) -> AdbcStatusCode {
    // SAFETY: as this function's own contract.
    unsafe { PgarrowAdbcDriverInit(version, driver, error) }
}
