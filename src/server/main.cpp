// Placeholder so the tree builds while the server is written; replaced by the real reverbd.
#include <cstdio>
int main() {
  std::fputs("reverbd: not built yet\n", stderr);
  return 1;
}
