cw_fuzz_target(dns_parse LIBS cw_dns)
