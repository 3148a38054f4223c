//! Link settings of the `actionkit-graphql` binary.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    // A position-independent binary carries one relocation per pointer in its
    // read-only data (about 19,000, 450 KiB in `.rela.dyn`), which the loader reads
    // at every start, so those pages stay in the process's memory. Packed relative
    // relocations (`DT_RELR`, glibc 2.36 and binutils 2.38 or later, as in Debian
    // bookworm) hold the same in a few KiB, and the binary stays position-independent.
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // The functions run at start, then those a query runs, laid out together
    // (`scripts/symbol-order.py` writes the list). The kernel maps 64 KiB of the binary
    // around each page fault, so start-up code spread over the whole text kept most of
    // it resident at idle. Release builds only, and only where the linker is lld, which
    // rustc uses on x86-64 Linux from 1.90 on (GNU ld does not know the option). A name
    // the binary no longer has is skipped: a stale list costs layout, not the build.
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("link/symbol-order.txt");
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if linux_gnu && x86_64 && release && order.exists() && rustc_links_with_lld() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether rustc is 1.90 or later (its default linker on x86-64 Linux is its own lld),
/// and no other linker was asked for.
fn rustc_links_with_lld() -> bool {
    let configured = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    if configured("RUSTC_LINKER")
        || std::env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker"))
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
