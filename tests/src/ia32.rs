// SPDX-License-Identifier: GPL-2.0-only
//! 32-bit (ia32) syscalls through `int $0x80` from this 64-bit process, as a
//! customer's 32-bit binary would make them: the kernel's per-syscall tracepoints
//! never see them. For the file-sensor tests (`compat-syscalls`) and the latency
//! bench (x86_64 only).

use anyhow::{bail, Result};

/// The i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl).
pub const WRITE: u32 = 4;
pub const OPEN: u32 = 5;
pub const CLOSE: u32 = 6;
pub const LINK: u32 = 9;
pub const RENAME: u32 = 38;

/// One 32-bit syscall. ebx cannot be an inline-asm operand (LLVM keeps rbx), so
/// the first argument is swapped in and out around the call; `int $0x80` from
/// 64-bit code leaves r8-r11 undefined.
pub fn call(nr: u32, a: u32, b: u32, c: u32) -> Result<u32> {
    let ret: i32;
    // SAFETY: a syscall with 32-bit arguments; the pointers among them address
    // buffers of `Low`, which outlive the call.
    unsafe {
        core::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) a as u64 => _,
            inlateout("eax") nr as i32 => ret,
            in("ecx") b,
            in("edx") c,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    if ret < 0 {
        bail!("{}", std::io::Error::from_raw_os_error(-ret));
    }
    Ok(ret as u32)
}

/// Memory below 4 GiB, where a 32-bit pointer can reach.
pub struct Low {
    ptr: *mut u8,
    len: usize,
    used: usize,
}

impl Low {
    pub fn new(len: usize) -> Result<Low> {
        // SAFETY: an anonymous private mapping, owned by the returned value.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mmap(MAP_32BIT): {}", std::io::Error::last_os_error());
        }
        Ok(Low {
            ptr: ptr.cast(),
            len,
            used: 0,
        })
    }

    /// Copy `bytes` in (NUL-terminated) and return their 32-bit address.
    pub fn put(&mut self, bytes: &[u8]) -> Result<u32> {
        if self.used + bytes.len() + 1 > self.len {
            bail!("{} bytes do not fit", bytes.len());
        }
        // SAFETY: within the mapping (checked above), which is ours.
        unsafe {
            let at = self.ptr.add(self.used);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
            *at.add(bytes.len()) = 0;
            self.used += bytes.len() + 1;
            Ok(at as usize as u32)
        }
    }
}

impl Drop for Low {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Write `data` to `path` with 32-bit open, write and close (`O_WRONLY|O_CREAT|O_TRUNC`).
pub fn write_file(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut low = Low::new(data.len() + path.as_os_str().len() + 4096)?;
    let buf = low.put(data)?;
    let name = low.put(path.as_os_str().as_bytes())?;
    const O_WRONLY_CREAT_TRUNC: u32 = 0o1 | 0o100 | 0o1000;
    let fd = call(OPEN, name, O_WRONLY_CREAT_TRUNC, 0o644)?;
    let n = call(WRITE, fd, buf, data.len() as u32)?;
    call(CLOSE, fd, 0, 0)?;
    if n as usize != data.len() {
        bail!("short write: {n} of {}", data.len());
    }
    Ok(())
}
