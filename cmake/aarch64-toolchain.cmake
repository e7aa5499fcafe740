# SPDX-License-Identifier: Apache-2.0
# Cross-compiling for aarch64 with Debian's cross compiler (g++-aarch64-linux-gnu)
# against a sysroot of arm64 packages extracted by scripts/debs.sh (the host's
# dpkg architectures are never changed); tests run under qemu-user.
# scripts/cross-aarch64.sh (make cross-aarch64) prepares CFS_SYSROOT and
# configures with this file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Also read by try_compile's projects, which see only the listed variables.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CFS_SYSROOT)
if(NOT CFS_SYSROOT)
  message(FATAL_ERROR "CFS_SYSROOT must name the arm64 sysroot (scripts/cross-aarch64.sh makes one)")
endif()
# The compiler's own libc and libstdc++ live in /usr/aarch64-linux-gnu; every
# other library and header in the sysroot, never the host's.
set(CMAKE_FIND_ROOT_PATH ${CFS_SYSROOT} /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Headers such as fmt's or OpenSSL's, and the libraries the linker resolves
# for shared libraries' own dependencies (libfsverity needs libcrypto).
set(CMAKE_CXX_FLAGS_INIT
    "-isystem ${CFS_SYSROOT}/usr/include -isystem ${CFS_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_C_FLAGS_INIT "${CMAKE_CXX_FLAGS_INIT}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${CFS_SYSROOT}/usr/lib/aarch64-linux-gnu")
# pkg-config (libfsverity) reads only the sysroot's .pc files.
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${CFS_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR}
    ${CFS_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${CFS_SYSROOT}/usr/share/pkgconfig)
# Tests and gtest's test discovery run under qemu-user: the loader and libc of
# the cross toolchain, the sysroot's libraries by LD_LIBRARY_PATH.
set(CMAKE_CROSSCOMPILING_EMULATOR
    qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=${CFS_SYSROOT}/usr/lib/aarch64-linux-gnu)
