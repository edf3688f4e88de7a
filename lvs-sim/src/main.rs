//! `lvs-sim`: what would IPVS do? The `sched` subcommand lands with the director.

fn main() {
    eprintln!("lvs-sim: the sched subcommand needs lvs-core's director");
    std::process::exit(2);
}
