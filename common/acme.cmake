# ACME (RFC 8555) client over libcurl: linked by shadow and vaultctl.
# Included by the top-level CMakeLists.txt when this file exists.
add_library(svacme STATIC
  common/acme.c common/acme_http.c common/acme_order.c
  common/acme_parse.c common/acme_objects.c common/acme_util.c)
target_include_directories(svacme PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/common)
target_link_libraries(svacme PUBLIC svcommon PkgConfig::CURL Threads::Threads)
