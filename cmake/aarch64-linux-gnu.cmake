# Cross-compiles the torch-free C++ core for 64-bit Arm Linux with Debian's
# g++-aarch64-linux-gnu; ctest runs the test binaries under qemu-user (.ci/aarch64.sh).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DFUSEDOPT_CORE_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Binutils of the target (the level-object check reads the objects with them).
set(CMAKE_NM aarch64-linux-gnu-nm)
set(CMAKE_OBJDUMP aarch64-linux-gnu-objdump)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)

# add_test() commands that are targets of this build run through the emulator.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
