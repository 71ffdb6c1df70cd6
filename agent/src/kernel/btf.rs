// SPDX-License-Identifier: GPL-2.0-only
//! A small reader for the kernel's BTF (`/sys/kernel/btf/vmlinux`): struct member
//! offsets, so the kernel programs can walk `task_struct -> files -> file -> inode`
//! on whatever kernel they run on. aya-ebpf has no CO-RE relocations for Rust
//! programs, so the agent resolves the offsets at start and writes them into
//! `RAMPART_KERNEL_OFFSETS`; a kernel without BTF simply gets no file metadata.
//!
//! Format: include/uapi/linux/btf.h (header, type section, string section).
#![forbid(unsafe_code)]

use std::path::Path;

use agent_common::KernelOffsets;

/// Where the running kernel publishes its BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not BTF (magic {0:#06x})")]
    Magic(u16),
    #[error("BTF truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown BTF kind {kind} (type id {id})")]
    Kind { kind: u8, id: u32 },
    #[error("no struct {0} in BTF")]
    NoStruct(String),
    #[error("struct {ty} has no member {member}")]
    NoMember { ty: String, member: String },
    #[error("{ty}.{member} is not an embedded struct or union")]
    NotComposite { ty: String, member: String },
    #[error("{ty}.{member} is a bitfield")]
    Bitfield { ty: String, member: String },
    #[error("{ty}.{member} is {actual} bytes, expected {expected}")]
    Size {
        ty: String,
        member: String,
        actual: u32,
        expected: u32,
    },
}

struct Member {
    name_off: u32,
    ty: u32,
    /// Raw `offset` word: bits, or (bitfield size << 24 | bits) when `kind_flag` is set.
    offset: u32,
}

struct Type {
    name_off: u32,
    kind: u8,
    kind_flag: bool,
    /// `size` for INT/STRUCT/UNION/ENUM/FLOAT, `type` for PTR/TYPEDEF/modifiers.
    size_or_type: u32,
    members: Vec<Member>,
    /// Element type and count for arrays.
    array: Option<(u32, u32)>,
}

/// Parsed BTF: every type, and the string section.
pub struct Btf {
    /// `types[id - 1]`; id 0 is void.
    types: Vec<Type>,
    strings: Vec<u8>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or(BtfError::Truncated(self.pos))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Result<(), BtfError> {
        if self.pos + n > self.data.len() {
            return Err(BtfError::Truncated(self.pos));
        }
        self.pos += n;
        Ok(())
    }
}

impl Btf {
    /// Read and parse a BTF file (normally [`VMLINUX`]).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parse little-endian BTF. Never panics on malformed input.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = u16::from_le_bytes([
            *data.first().ok_or(BtfError::Truncated(0))?,
            *data.get(1).ok_or(BtfError::Truncated(1))?,
        ]);
        if magic != MAGIC {
            return Err(BtfError::Magic(magic));
        }
        let mut h = Reader { data, pos: 4 };
        let hdr_len = h.u32()? as usize;
        let type_off = h.u32()? as usize;
        let type_len = h.u32()? as usize;
        let str_off = h.u32()? as usize;
        let str_len = h.u32()? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Truncated(0))?;
            let end = start.checked_add(len).ok_or(BtfError::Truncated(start))?;
            data.get(start..end).ok_or(BtfError::Truncated(start))
        };
        let type_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();

        let mut r = Reader {
            data: type_data,
            pos: 0,
        };
        let mut types = Vec::new();
        while r.pos < type_data.len() {
            let id = types.len() as u32 + 1;
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = ((info >> 24) & 0x1f) as u8;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let mut array = None;
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => r.skip(4)?,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => {}
                KIND_ARRAY => {
                    let elem = r.u32()?;
                    let _index = r.u32()?;
                    let n = r.u32()?;
                    array = Some((elem, n));
                }
                KIND_STRUCT | KIND_UNION => {
                    members.reserve(vlen.min(type_data.len() / 12));
                    for _ in 0..vlen {
                        members.push(Member {
                            name_off: r.u32()?,
                            ty: r.u32()?,
                            offset: r.u32()?,
                        });
                    }
                }
                KIND_ENUM | KIND_FUNC_PROTO => r.skip(vlen * 8)?,
                KIND_DATASEC | KIND_ENUM64 => r.skip(vlen * 12)?,
                other => return Err(BtfError::Kind { kind: other, id }),
            }
            types.push(Type {
                name_off,
                kind,
                kind_flag,
                size_or_type,
                members,
                array,
            });
        }
        Ok(Self { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Follow typedefs and qualifiers to the underlying type id.
    fn strip(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Size in bytes of a type (pointers are 8 bytes on the 64-bit kernels we run on).
    fn size_of(&self, id: u32) -> u32 {
        let id = self.strip(id);
        match self.ty(id) {
            Some(t) if t.kind == KIND_PTR => 8,
            Some(t) if t.kind == KIND_ARRAY => t
                .array
                .map(|(e, n)| self.size_of(e).saturating_mul(n))
                .unwrap_or(0),
            Some(t) => t.size_or_type,
            None => 0,
        }
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| {
                t.kind == KIND_STRUCT
                    && !t.members.is_empty()
                    && self.name(t.name_off) == name.as_bytes()
            })
            .map(|i| i as u32 + 1)
    }

    /// Find `member` in the struct/union `id`, looking through anonymous members.
    /// Returns (byte offset, member type id).
    fn find(&self, id: u32, ty_name: &str, member: &str) -> Result<Option<(u32, u32)>, BtfError> {
        let Some(t) = self.ty(self.strip(id)) else {
            return Ok(None);
        };
        if !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return Ok(None);
        }
        for m in &t.members {
            let (bits, bitfield) = if t.kind_flag {
                (m.offset & 0xff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            let name = self.name(m.name_off);
            if name == member.as_bytes() {
                if bitfield != 0 || bits % 8 != 0 {
                    return Err(BtfError::Bitfield {
                        ty: ty_name.into(),
                        member: member.into(),
                    });
                }
                return Ok(Some((bits / 8, m.ty)));
            }
            if name.is_empty() {
                if let Some((off, ty)) = self.find(m.ty, ty_name, member)? {
                    return Ok(Some((bits / 8 + off, ty)));
                }
            }
        }
        Ok(None)
    }

    /// Byte offset and size of `path` ("f_path.dentry") inside `struct ty`. Each
    /// component but the last must be an embedded struct or union (never a pointer).
    pub fn member(&self, ty: &str, path: &str) -> Result<(u32, u32), BtfError> {
        let mut id = self
            .struct_id(ty)
            .ok_or_else(|| BtfError::NoStruct(ty.into()))?;
        let mut total = 0u32;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, mty) = self.find(id, ty, part)?.ok_or_else(|| BtfError::NoMember {
                ty: ty.into(),
                member: path.into(),
            })?;
            total += off;
            if parts.peek().is_some() {
                let inner = self.strip(mty);
                if !self
                    .ty(inner)
                    .is_some_and(|t| matches!(t.kind, KIND_STRUCT | KIND_UNION))
                {
                    return Err(BtfError::NotComposite {
                        ty: ty.into(),
                        member: part.into(),
                    });
                }
                id = inner;
            } else {
                return Ok((total, self.size_of(mty)));
            }
        }
        Err(BtfError::NoMember {
            ty: ty.into(),
            member: path.into(),
        })
    }

    /// Offset of a member whose size the kernel programs rely on.
    fn sized(&self, ty: &str, path: &str, expected: u32) -> Result<u32, BtfError> {
        let (off, size) = self.member(ty, path)?;
        if size != expected {
            return Err(BtfError::Size {
                ty: ty.into(),
                member: path.into(),
                actual: size,
                expected,
            });
        }
        Ok(off)
    }

    /// Every offset the kernel programs use, with the sizes they read checked.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let mut o = KernelOffsets {
            valid: 1,
            task_files: self.sized("task_struct", "files", 8)?,
            task_real_parent: self.sized("task_struct", "real_parent", 8)?,
            task_tgid: self.sized("task_struct", "tgid", 4)?,
            task_comm: self.sized("task_struct", "comm", agent_common::COMM_LEN as u32)?,
            files_fdt: self.sized("files_struct", "fdt", 8)?,
            fdt_max_fds: self.sized("fdtable", "max_fds", 4)?,
            fdt_fd: self.sized("fdtable", "fd", 8)?,
            file_f_mode: self.sized("file", "f_mode", 4)?,
            file_f_inode: self.sized("file", "f_inode", 8)?,
            inode_i_mode: self.sized("inode", "i_mode", 2)?,
            inode_i_ino: self.sized("inode", "i_ino", 8)?,
            inode_i_sb: self.sized("inode", "i_sb", 8)?,
            inode_i_size: self.sized("inode", "i_size", 8)?,
            sb_s_dev: self.sized("super_block", "s_dev", 4)?,
            bprm_filename: self.sized("linux_binprm", "filename", 8)?,
            task_mm: self.sized("task_struct", "mm", 8)?,
            mm_arg_start: self.sized("mm_struct", "arg_start", 8)?,
            mm_arg_end: self.sized("mm_struct", "arg_end", 8)?,
            file_f_path_dentry: self.sized("file", "f_path.dentry", 8)?,
            file_f_path_mnt: self.sized("file", "f_path.mnt", 8)?,
            dentry_d_parent: self.sized("dentry", "d_parent", 8)?,
            dentry_d_name_len: self.sized("dentry", "d_name.len", 4)?,
            dentry_d_name_name: self.sized("dentry", "d_name.name", 8)?,
            dentry_d_inode: self.sized("dentry", "d_inode", 8)?,
            dentry_d_sb: self.sized("dentry", "d_sb", 8)?,
            vfsmount_mnt_root: self.sized("vfsmount", "mnt_root", 8)?,
            mount_mnt: self.member("mount", "mnt")?.0,
            mount_mnt_parent: self.sized("mount", "mnt_parent", 8)?,
            mount_mnt_mountpoint: self.sized("mount", "mnt_mountpoint", 8)?,
            bprm_file: self.sized("linux_binprm", "file", 8)?,
            bprm_interp: self.sized("linux_binprm", "interp", 8)?,
            inode_i_nlink: self.sized("inode", "i_nlink", 4)?,
            // x86 only (TS_COMPAT): elsewhere the 32-bit program is not attached.
            // Never at 0 (`thread_info.flags` comes first), so 0 says "none".
            task_thread_status: self
                .sized("task_struct", "thread_info.status", 4)
                .unwrap_or(0),
            dentry_chunk: 0,
            uring_opcode: 0,
            uring_open_slot: 0,
            uring_close_fd: 0,
            uring_close_slot: 0,
            uring_path_old_dfd: 0,
            uring_path_new_dfd: 0,
            uring_path_old: 0,
            uring_path_new: 0,
            uring_path_flags: 0,
            filename_name: 0,
            uring_unlink_dfd: 0,
            uring_unlink_name: 0,
        };
        o.dentry_chunk = dentry_chunk(&o)?;
        // Optional: without them the io_uring program is not attached (and named).
        if let Ok(u) = self.uring_offsets() {
            [
                o.uring_opcode,
                o.uring_open_slot,
                o.uring_close_fd,
                o.uring_close_slot,
            ] = u;
        }
        if let Ok(u) = self.uring_path_offsets() {
            [
                o.uring_path_old_dfd,
                o.uring_path_new_dfd,
                o.uring_path_old,
                o.uring_path_new,
                o.uring_path_flags,
                o.filename_name,
                o.uring_unlink_dfd,
                o.uring_unlink_name,
            ] = u;
        }
        Ok(o)
    }

    /// Where an io_uring rename or link keeps its dirfds, names and flags (offsets
    /// from the `struct io_kiocb`; `io_rename` and `io_link` must agree),
    /// `filename.name`, and an unlink's (`io_unlink`) dirfd and name. An error where
    /// this kernel has no such requests (all came in the same release, 5.11).
    pub fn uring_path_offsets(&self) -> Result<[u32; 8], BtfError> {
        let cmd = self.member("io_kiocb", "cmd")?.0;
        let layout = |ty: &str| -> Result<[u32; 5], BtfError> {
            Ok([
                cmd + self.sized(ty, "old_dfd", 4)?,
                cmd + self.sized(ty, "new_dfd", 4)?,
                cmd + self.sized(ty, "oldpath", 8)?,
                cmd + self.sized(ty, "newpath", 8)?,
                cmd + self.sized(ty, "flags", 4)?,
            ])
        };
        let rename = layout("io_rename")?;
        if layout("io_link")? != rename {
            return Err(BtfError::NoMember {
                ty: "io_link".into(),
                member: "old_dfd..flags where io_rename has them".into(),
            });
        }
        let [a, b, c, d, e] = rename;
        Ok([
            a,
            b,
            c,
            d,
            e,
            self.sized("filename", "name", 8)?,
            cmd + self.sized("io_unlink", "dfd", 4)?,
            cmd + self.sized("io_unlink", "filename", 8)?,
        ])
    }

    /// Where the io_uring completion program reads a request's opcode, and in its
    /// command area the open's fixed-file slot and the close's fd and slot: offsets
    /// from the `struct io_kiocb`. An error where this kernel has no io_uring (or
    /// laid it out otherwise).
    pub fn uring_offsets(&self) -> Result<[u32; 4], BtfError> {
        let opcode = self.sized("io_kiocb", "opcode", 1)?;
        let cmd = self.member("io_kiocb", "cmd")?.0;
        Ok([
            opcode,
            cmd + self.sized("io_open", "file_slot", 4)?,
            cmd + self.sized("io_close", "fd", 4)?,
            cmd + self.sized("io_close", "file_slot", 4)?,
        ])
    }
}

/// The window of `struct dentry` the walk reads per step: every field it needs
/// must lie within [`agent_common::DENTRY_CHUNK`] bytes of an 8-aligned start.
fn dentry_chunk(o: &KernelOffsets) -> Result<u32, BtfError> {
    let fields = [
        ("d_parent", o.dentry_d_parent, 8),
        ("d_name.len", o.dentry_d_name_len, 4),
        ("d_name.name", o.dentry_d_name_name, 8),
        ("d_inode", o.dentry_d_inode, 8),
        ("d_sb", o.dentry_d_sb, 8),
    ];
    let start = fields.iter().map(|f| f.1).min().unwrap_or(0) & !7;
    for (member, off, size) in fields {
        if off + size > start + agent_common::DENTRY_CHUNK as u32 {
            return Err(BtfError::Size {
                ty: "dentry".into(),
                member: format!("{member} at {off} (outside the walk's window from {start})"),
                actual: off + size - start,
                expected: agent_common::DENTRY_CHUNK as u32,
            });
        }
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BTF blob: int (id 1), ptr->int (2), struct inner {int a; int b;} (3),
    /// struct outer {int x; struct inner in; union { int u; }; int *p; int bf:3;} (4),
    /// anon union (5), typedef inner_t -> 3 (6).
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0u\0p\0bf\0inner_t\0".to_vec();
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("string") as u32
                + 1
        };
        let mut t: Vec<u32> = Vec::new();
        let info = |kind: u32, vlen: u32, kflag: u32| (kflag << 31) | (kind << 24) | vlen;
        // 1: int (4 bytes)
        t.extend([s("int"), info(1, 0, 0), 4, 32]);
        // 2: ptr -> 1
        t.extend([0, info(2, 0, 0), 1]);
        // 3: struct inner (8 bytes)
        t.extend([s("inner"), info(4, 2, 0), 8]);
        t.extend([s("a"), 1, 0, s("b"), 1, 32]);
        // 4: struct outer, kind_flag (bitfield encoding)
        t.extend([s("outer"), info(4, 5, 1), 32]);
        t.extend([s("x"), 1, 0]);
        t.extend([s("in"), 6, 32]);
        t.extend([0, 5, 96]);
        t.extend([s("p"), 2, 128]);
        t.extend([s("bf"), 1, (3 << 24) | 192]);
        // 5: anonymous union { int u; }
        t.extend([0, info(5, 1, 0), 4]);
        t.extend([s("u"), 1, 0]);
        // 6: typedef inner_t -> 3
        t.extend([s("inner_t"), info(8, 0, 0), 3]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_le_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn resolves_nested_anonymous_and_typedef_members() {
        let b = Btf::parse(&blob()).expect("parse");
        assert_eq!(b.member("outer", "x").expect("x"), (0, 4));
        assert_eq!(b.member("outer", "in").expect("in"), (4, 8));
        assert_eq!(b.member("outer", "in.b").expect("in.b"), (8, 4));
        assert_eq!(b.member("outer", "u").expect("anon union"), (12, 4));
        assert_eq!(b.member("outer", "p").expect("p"), (16, 8));
        assert!(matches!(
            b.member("outer", "bf"),
            Err(BtfError::Bitfield { .. })
        ));
        assert!(matches!(
            b.member("outer", "p.a"),
            Err(BtfError::NotComposite { .. })
        ));
        assert!(matches!(
            b.member("outer", "nope"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(b.member("nope", "x"), Err(BtfError::NoStruct(_))));
        assert!(matches!(
            b.sized("outer", "x", 8),
            Err(BtfError::Size { actual: 4, .. })
        ));
    }

    #[test]
    fn malformed_btf_is_an_error_never_a_panic() {
        let good = blob();
        for n in 0..good.len() {
            let _ = Btf::parse(&good[..n]);
        }
        assert!(matches!(Btf::parse(&[0, 0]), Err(BtfError::Magic(0))));
        assert!(matches!(Btf::parse(&[]), Err(BtfError::Truncated(0))));
        let mut bad_kind = good.clone();
        // First type's info word: kind 31.
        bad_kind[24 + 4 + 3] = 31;
        assert!(matches!(
            Btf::parse(&bad_kind),
            Err(BtfError::Kind { kind: 31, id: 1 })
        ));
        // Huge vlen with little data: truncated, not a giant allocation.
        let mut huge = good.clone();
        huge[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(Btf::parse(&huge).is_err());
    }

    #[test]
    fn running_kernel_offsets_resolve() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            // Unit tests run anywhere; CI machines have BTF, so there it must resolve.
            assert!(std::env::var_os("CI").is_none(), "CI requires {VMLINUX}");
            return;
        }
        let b = Btf::from_file(path).expect("vmlinux BTF");
        let o = b.kernel_offsets().expect("offsets");
        assert_eq!(o.valid, 1);
        assert!(o.inode_i_ino > 0 && o.file_f_inode > 0 && o.task_files > 0);
        // io_uring's request: the opcode after the command area that opens and
        // closes overlay (their `struct file *` first, so no field of theirs at 0).
        let [opcode, open_slot, close_fd, close_slot] = b.uring_offsets().expect("io_uring");
        assert_eq!(
            [opcode, open_slot, close_fd, close_slot],
            [
                o.uring_opcode,
                o.uring_open_slot,
                o.uring_close_fd,
                o.uring_close_slot
            ]
        );
        assert!(opcode >= 16 && open_slot >= 8 && close_fd >= 8, "{o:?}");
        assert_eq!(close_slot, close_fd + 4, "{o:?}");
        let paths = b.uring_path_offsets().expect("io_uring renames");
        assert_eq!(
            paths,
            [
                o.uring_path_old_dfd,
                o.uring_path_new_dfd,
                o.uring_path_old,
                o.uring_path_new,
                o.uring_path_flags,
                o.filename_name,
                o.uring_unlink_dfd,
                o.uring_unlink_name
            ]
        );
        assert!(paths[2] >= 16 && paths[3] == paths[2] + 8, "{o:?}");
        // io_unlink { file; int dfd; int flags; struct filename *filename; }.
        assert!(paths[6] >= 8 && paths[7] == paths[6] + 8, "{o:?}");
    }
}
