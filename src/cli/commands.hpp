// The `berth` command tree (everything but `berth runtime`, which is berth-runtime's).
#pragma once

namespace berth::cli {

int main(int argc, char** argv);

}  // namespace berth::cli
