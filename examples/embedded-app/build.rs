// A new migration file must rebuild the binary that embeds the directory.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
