"""BGP mode adapters: the exabgp process driver, its API relay, RFC 5881 BFD over UDP, and the manager tying them."""
