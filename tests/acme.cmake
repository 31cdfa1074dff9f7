# ACME client tests: offline parsing (unit) and end to end against Pebble.
# Included by tests/CMakeLists.txt when this file exists.
sv_unit(acme_parse svacme)

# End to end against Pebble: a fixture starts it (pebble.sh, fresh CA and free
# loopback ports in ${CMAKE_BINARY_DIR}/pebble-acme) and stops it by PID.
set(SV_PEBBLE_SH ${CMAKE_CURRENT_SOURCE_DIR}/integration/pebble.sh)
set(SV_PEBBLE_ACME_DIR ${CMAKE_BINARY_DIR}/pebble-acme)
add_test(NAME integration.acme.pebble_start
  COMMAND ${SV_PEBBLE_SH} start ${SV_PEBBLE_ACME_DIR}
    --nonce-reject 30 --authz-reuse 100 --alternate-roots 1)
set_tests_properties(integration.acme.pebble_start PROPERTIES
  FIXTURES_SETUP pebble_acme TIMEOUT 60)
add_test(NAME integration.acme.pebble_stop COMMAND ${SV_PEBBLE_SH} stop ${SV_PEBBLE_ACME_DIR})
set_tests_properties(integration.acme.pebble_stop PROPERTIES
  FIXTURES_CLEANUP pebble_acme TIMEOUT 60)

add_executable(test_acme_pebble integration/test_acme_pebble.c)
target_link_libraries(test_acme_pebble PRIVATE svacme svtestlib PkgConfig::CMOCKA Threads::Threads)
add_test(NAME integration.acme.pebble COMMAND test_acme_pebble)
set_tests_properties(integration.acme.pebble PROPERTIES
  FIXTURES_REQUIRED pebble_acme TIMEOUT 120
  ENVIRONMENT "PEBBLE_ENV_FILE=${SV_PEBBLE_ACME_DIR}/env;ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# Against a scripted HTTPS CA inside the test: wire format and error paths.
add_executable(test_acme_fakeca integration/test_acme_fakeca.c integration/fakeca.c)
target_link_libraries(test_acme_fakeca PRIVATE svacme svtestlib PkgConfig::CMOCKA Threads::Threads)
add_test(NAME integration.acme.fakeca COMMAND test_acme_fakeca)
set_tests_properties(integration.acme.fakeca PROPERTIES TIMEOUT 60
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
