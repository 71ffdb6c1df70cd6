// SPDX-License-Identifier: GPL-2.0-only
//! One declaration per counter set: the slots of a per-CPU `*_STATS_TOTAL` map, their
//! stable numbers and their names, so a new counter is one line.

/// Declare a counter enum: `Variant = slot => "name",` per line. Generates the
/// `#[repr(u32)]` enum, `ALL` (slot order), `COUNT`, `NAMES` (slot order), `as_str`
/// and `from_u32`. Slots must be dense and in order (checked at compile time), so a
/// slot's index in `NAMES` is its number in the map.
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $slot:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $slot, )+
        }

        impl $name {
            pub const COUNT: u32 = [$( $text ),+].len() as u32;
            pub const ALL: [$name; $name::COUNT as usize] = [$( $name::$variant ),+];
            pub const NAMES: [&'static str; $name::COUNT as usize] = [$( $text ),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            pub fn from_u32(v: u32) -> Option<Self> {
                Self::ALL.into_iter().find(|s| *s as u32 == v)
            }
        }

        const _: () = {
            let mut i = 0;
            while i < $name::ALL.len() {
                assert!($name::ALL[i] as usize == i, "counter slots must be dense and in order");
                i += 1;
            }
        };
    };
}
