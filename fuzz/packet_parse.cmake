cw_fuzz_target(packet_parse LIBS cw_packet)
