"""GB/T 28181 platform: SIP server, device registry, Catalog, INVITE/BYE, RTP/RFC 4571, PS demux, GbSource."""
