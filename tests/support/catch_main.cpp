// Main of the self-contained test binaries (Catch2's implementation is in catch_impl.cpp).
int slmc_catch_run(int argc, char** argv);

int main(int argc, char** argv) { return slmc_catch_run(argc, argv); }
