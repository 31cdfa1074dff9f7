# The vault's shadow CA (vault/shadowca.c): certificates signed by a token key
# through the libp11 engine.  Included by vault/CMakeLists.txt.
add_library(svshadowca STATIC ${CMAKE_CURRENT_SOURCE_DIR}/shadowca.c)
target_include_directories(svshadowca PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(svshadowca PUBLIC svhsm)

if(SV_TESTS) # tests/ (svtestlib) is configured before vault/
  add_executable(test_shadowca ${CMAKE_SOURCE_DIR}/tests/unit/test_shadowca.c)
  target_link_libraries(test_shadowca PRIVATE svshadowca svtestlib PkgConfig::CMOCKA)
  add_test(NAME unit.shadowca COMMAND test_shadowca)
  set_tests_properties(unit.shadowca PROPERTIES TIMEOUT 300 ENVIRONMENT "${SV_SAN_ENV}")
endif()
