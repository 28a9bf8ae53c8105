# Sourced by the scripts that build or use the tools cached outside the
# checkout (the S3 servers, Garage, cargo-deb), so that a clean clone reuses
# them: sets $tools to REWIND_TEST_TOOLS, else /var/cache/rewind-test-tools
# for root, else ~/.cache/rewind-test-tools. tests/common/s3_server.rs
# looks in the same place.
if [ "$(id -u)" = 0 ]; then
  tools=/var/cache/rewind-test-tools
else
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test-tools"
fi
tools="${REWIND_TEST_TOOLS:-$tools}"
