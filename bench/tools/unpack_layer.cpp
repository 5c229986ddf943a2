// berth-unpack-layer TAR DEST: unpacks one layer with berth's unpacker (no store, no blob copy),
// so bench/pull.sh can compare the unpacker alone with GNU tar -x.
#include <fcntl.h>

#include <iostream>

#include "image/unpack.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: berth-unpack-layer LAYER.tar[.gz|.zst] DEST\n";
    return 2;
  }
  try {
    berth::UniqueFd fd = berth::open_or_throw(argv[1], O_RDONLY);
    berth::mkdir_p(argv[2]);
    berth::image::UnpackResult r = berth::image::unpack_layer_fd(fd.get(), argv[2]);
    std::cout << r.diff_id << "\n";
  } catch (const std::exception& e) {
    std::cerr << "berth-unpack-layer: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
