//! `certs init` and `certs issue`: certificates for a new pair, or a renewed one for a node. They
//! need no running node.

use crate::args::CertsCommand;
use crate::failure::Failure;

pub fn certs(command: &CertsCommand) -> Result<(), Failure> {
    let written = match command {
        CertsCommand::Init {
            dir,
            nodes,
            witness: Some(witness),
            days,
        } if nodes.is_empty() => tandem_node::tls::certs::issue_witness_cert(dir, witness, *days)?,
        CertsCommand::Init {
            dir,
            nodes,
            witness,
            days,
        } => tandem_node::tls::certs::init_pair_certs(dir, nodes, witness.as_deref(), *days)?,
        CertsCommand::Issue { dir, name, days } => {
            tandem_node::tls::certs::issue_cert(dir, name, *days)?
        }
    };
    for path in written {
        match tandem_node::tls::certs::read_cert_summary(&path) {
            Ok(cert) => println!(
                "wrote {} (CN {}, serial {}, valid until {})",
                path.display(),
                cert.subject,
                cert.serial_hex,
                cert.not_after_utc()
            ),
            Err(_) => println!("wrote {}", path.display()),
        }
    }
    Ok(())
}
