# Writes a C++ source holding a file's bytes: cmake -DIN=f -DOUT=f.cc -DNAME=sym -P embed.cmake
# gives `extern const unsigned char sym[]; extern const std::size_t sym_size;` in namespace cw.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" len)
math(EXPR size "${len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed.cmake; do not edit.\n#include <cstddef>\nnamespace cw {\nextern const unsigned char ${NAME}[];\nextern const std::size_t ${NAME}_size;\nalignas(8) const unsigned char ${NAME}[] = {\n${bytes}\n};\nconst std::size_t ${NAME}_size = ${size};\n}  // namespace cw\n")
