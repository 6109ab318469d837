// Catch2's implementation, compiled once for every test binary; the two mains (catch_main.cpp,
// models_main.cpp) call slmc_catch_run and include nothing of Catch2.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int slmc_catch_run(int argc, char** argv) { return Catch::Session().run(argc, argv); }
