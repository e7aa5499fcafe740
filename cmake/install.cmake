# `make install`: the tools, the headers under include/composefs-cpp/, the
# library as libcomposefs-cpp.so.<major> and libcomposefs-cpp.a (both made
# of the module libraries' objects), a CMake package (find_package(
# composefs-cpp) gives composefs-cpp::composefs and
# composefs-cpp::composefs-static) and composefs-cpp.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# mount(8) runs /sbin/mount.<type> for `mount -t <type>`, whatever the prefix.
set(CFS_MOUNT_HELPER_DIR "/sbin" CACHE PATH "Where mount.composefs is installed")

set(cfs_objects "")
foreach(m ${CFS_MODULES})
  list(APPEND cfs_objects $<TARGET_OBJECTS:cfs_${m}>)
endforeach()

# Only what the headers need is public: fmt and tl::expected (base/error.h).
# OpenSSL, zlib, zstd, curl, PCRE2 and toml++ stay behind the library.
pkg_check_modules(CFS_PRIVATE_DEPS REQUIRED IMPORTED_TARGET zlib libzstd libcurl libpcre2-8 tomlplusplus)
add_library(composefs SHARED ${cfs_objects})
add_library(composefs-static STATIC ${cfs_objects})
foreach(t composefs composefs-static)
  target_include_directories(${t} PUBLIC $<BUILD_INTERFACE:${CFS_INCLUDE_DIRS}>
                                         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${t} PUBLIC fmt::fmt tl::expected
                             PRIVATE OpenSSL::Crypto PkgConfig::CFS_PRIVATE_DEPS Threads::Threads
                                     nlohmann_json::nlohmann_json)
  set_target_properties(${t} PROPERTIES OUTPUT_NAME composefs-cpp EXPORT_NAME ${t})
endforeach()
set_target_properties(composefs PROPERTIES VERSION ${PROJECT_VERSION}
                                           SOVERSION ${PROJECT_VERSION_MAJOR})
add_library(composefs-cpp::composefs ALIAS composefs)
add_library(composefs-cpp::composefs-static ALIAS composefs-static)

install(TARGETS mkcomposefs cfsctl composefs-info composefs-dump composefs-setup-root
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS mount.composefs RUNTIME DESTINATION ${CFS_MOUNT_HELPER_DIR})
foreach(dir ${CFS_INCLUDE_DIRS})
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
endforeach()

set(cfs_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/composefs-cpp)
install(TARGETS composefs EXPORT composefs-cpp-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS composefs-static EXPORT composefs-cpp-static-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT composefs-cpp-targets NAMESPACE composefs-cpp:: DESTINATION ${cfs_cmake_dir})
install(EXPORT composefs-cpp-static-targets NAMESPACE composefs-cpp:: DESTINATION ${cfs_cmake_dir})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/composefs-cpp-config.cmake.in
  ${CMAKE_BINARY_DIR}/composefs-cpp-config.cmake INSTALL_DESTINATION ${cfs_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/composefs-cpp-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/composefs-cpp-config.cmake
              ${CMAKE_BINARY_DIR}/composefs-cpp-config-version.cmake
        DESTINATION ${cfs_cmake_dir})

file(RELATIVE_PATH CFS_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${CMAKE_SOURCE_DIR}/cmake/composefs-cpp.pc.in ${CMAKE_BINARY_DIR}/composefs-cpp.pc
               @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/composefs-cpp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
