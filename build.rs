//! Link settings of the `actionkit-graphql` binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
}
