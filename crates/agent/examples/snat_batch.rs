//! Prints the agent's SNAT table for a sample node, the minimal batch that
//! one changed no-SNAT CIDR becomes, and a packet trace through the fake:
//!
//! ```sh
//! cargo run -p aksnet-agent --example snat_batch
//! ```

use aksnet_agent::snat::{desired, MasqPolicy};
use aksnet_nft::{diff, trace, Driver, Fake, Hook, Host, Packet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let before = MasqPolicy {
        pod_sources: vec!["10.244.0.0/24".parse()?],
        non_masquerade: vec!["10.244.0.0/16".parse()?],
        node_ip: "10.224.0.4".parse()?,
    };
    let mut after = before.clone();
    after.non_masquerade = vec!["10.245.0.0/16".parse()?];

    let mut fake = Fake::new();
    fake.apply(&diff::create(&desired(&before)))?;
    println!("# the table (fake dump)\n{}", fake.dump());

    let batch = diff::diff(&desired(&before), &desired(&after));
    println!("# one SNAT CIDR changed (10.244.0.0/16 -> 10.245.0.0/16): the minimal batch");
    print!("{batch}");
    println!("{}\n", serde_json::to_string_pretty(&batch.to_json())?);
    fake.apply(&batch)?;

    let p = Packet::tcp("10.244.0.5", 40000, "10.244.3.9", 80).oif("eth0");
    println!("# trace after the change");
    print!(
        "{}",
        trace(&fake.ruleset(), &Host::default(), &p, &[Hook::Postrouting])
    );
    Ok(())
}
