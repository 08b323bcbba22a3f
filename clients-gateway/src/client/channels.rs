//! The client's connections, one per address: dialled lazily, dropped after a failure so the
//! next attempt dials afresh.

use tonic::transport::{Channel, Endpoint};

use super::config::PairConfig;
use super::error::ClientError;

/// Addresses kept at most: the two configured ones plus two named by refusals. A refusal can
/// name any address (a node's configuration says what it advertises); past the bound the oldest
/// unconfigured one is forgotten, so a confused pair cannot make the client hoard connections.
const ADDRESSES_MAX: usize = 4;

/// One address's endpoint and, once dialled, its connection.
struct Entry {
    address: String,
    /// Set up once (TLS configuration included); dialling it does the IO.
    endpoint: Endpoint,
    /// The connection in use; `None` until first used or after it was dropped.
    channel: Option<Channel>,
}

/// The connections of one `PairClient`. The first two entries are the configured addresses and
/// stay for the client's lifetime.
pub struct Channels {
    entries: Vec<Entry>,
}

impl Channels {
    /// Channels for the configured addresses (`endpoints[i]` dials `addresses[i]`).
    pub fn new(addresses: &[String; 2], endpoints: [Endpoint; 2]) -> Channels {
        let entries = addresses
            .iter()
            .zip(endpoints)
            .map(|(address, endpoint)| Entry {
                address: address.clone(),
                endpoint,
                channel: None,
            })
            .collect();
        Channels { entries }
    }

    /// The connection to `address`, set up (without IO) if there is none. Fails only for an
    /// unconfigured address that cannot be dialled (a refusal named something that is not
    /// `HOST:PORT`).
    pub fn get(&mut self, config: &PairConfig, address: &str) -> Result<Channel, ClientError> {
        let index = match self
            .entries
            .iter()
            .position(|entry| entry.address == address)
        {
            Some(index) => index,
            None => self.add(config, address)?,
        };
        let entry = &mut self.entries[index];
        let channel = entry
            .channel
            .get_or_insert_with(|| entry.endpoint.connect_lazy());
        Ok(channel.clone())
    }

    /// Drops the connection to `address`, so the next request dials again. Returns whether
    /// there was one.
    pub fn drop_connection(&mut self, address: &str) -> bool {
        self.entries
            .iter_mut()
            .find(|entry| entry.address == address)
            .and_then(|entry| entry.channel.take())
            .is_some()
    }

    fn add(&mut self, config: &PairConfig, address: &str) -> Result<usize, ClientError> {
        let endpoint = config.endpoint(address)?;
        if self.entries.len() >= ADDRESSES_MAX {
            // Entries 0 and 1 are the configured addresses; 2 is the oldest named one.
            self.entries.remove(2);
        }
        self.entries.push(Entry {
            address: address.to_string(),
            endpoint,
            channel: None,
        });
        Ok(self.entries.len() - 1)
    }

    #[cfg(test)]
    fn addresses(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|entry| entry.address.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[tokio::test]
    async fn named_addresses_are_bounded_and_configured_ones_kept() {
        let addresses = ["127.0.0.1:7001".to_string(), "127.0.0.1:7002".to_string()];
        let config = PairConfig::new(addresses.clone(), CA.as_bytes().to_vec());
        let endpoints = [
            config.endpoint(&addresses[0]).unwrap(),
            config.endpoint(&addresses[1]).unwrap(),
        ];
        let mut channels = Channels::new(&addresses, endpoints);
        for port in 8001..8005 {
            channels.get(&config, &format!("127.0.0.1:{port}")).unwrap();
        }
        assert_eq!(
            channels.addresses(),
            [
                "127.0.0.1:7001",
                "127.0.0.1:7002",
                "127.0.0.1:8003",
                "127.0.0.1:8004"
            ]
        );
        assert!(channels.get(&config, "not an address").is_err());
        assert!(channels.drop_connection("127.0.0.1:8004"));
        assert!(!channels.drop_connection("127.0.0.1:8004"));
        assert!(!channels.drop_connection("127.0.0.1:7001"));
    }
}
