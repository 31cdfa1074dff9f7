# The classifier of ACME signing requests (vault/classify.c): pure code used by
# vaultd's key process.  Included by vault/CMakeLists.txt when this file exists.
add_library(svclassify STATIC ${CMAKE_CURRENT_LIST_DIR}/classify.c)
target_include_directories(svclassify PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(svclassify PUBLIC svpolicy svcommon PkgConfig::CURL)

# Its unit test needs svtestlib and SV_SAN_ENV from tests/, which the top-level
# CMakeLists.txt adds after vault/: register it now if tests/ is already
# configured, otherwise once the top-level directory has been processed.
function(sv_classify_test)
  if(NOT TARGET svtestlib)
    return()
  endif()
  get_directory_property(san_env DIRECTORY ${CMAKE_SOURCE_DIR}/tests DEFINITION SV_SAN_ENV)
  # Imported targets are directory-scoped: PkgConfig::CMOCKA exists in tests/ only.
  if(NOT TARGET PkgConfig::CMOCKA)
    pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
  endif()
  add_executable(test_classify ${CMAKE_SOURCE_DIR}/tests/unit/test_classify.c)
  target_link_libraries(test_classify PRIVATE svclassify svtestlib PkgConfig::CMOCKA)
  add_test(NAME unit.classify COMMAND test_classify)
  set_tests_properties(unit.classify PROPERTIES TIMEOUT 300 ENVIRONMENT "${san_env}")
endfunction()

if(TARGET svtestlib)
  sv_classify_test()
elseif(SV_TESTS)
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL sv_classify_test)
endif()
