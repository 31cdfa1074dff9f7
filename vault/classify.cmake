# The classifier of ACME signing requests (vault/classify.c): pure code used by
# vaultd's key process.  Included by vault/CMakeLists.txt.
add_library(svclassify STATIC ${CMAKE_CURRENT_LIST_DIR}/classify.c)
target_include_directories(svclassify PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(svclassify PUBLIC svpolicy svcommon PkgConfig::CURL)

if(SV_TESTS) # tests/ (svtestlib) is configured before vault/
  add_executable(test_classify ${CMAKE_SOURCE_DIR}/tests/unit/test_classify.c
    ${CMAKE_SOURCE_DIR}/tests/unit/cls_der.c)
  target_link_libraries(test_classify PRIVATE svclassify svtestlib PkgConfig::CMOCKA)
  add_test(NAME unit.classify COMMAND test_classify)
  set_tests_properties(unit.classify PROPERTIES TIMEOUT 300 ENVIRONMENT "${SV_SAN_ENV}")
endif()
