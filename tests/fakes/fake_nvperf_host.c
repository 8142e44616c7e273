/* A stand-in libnvperf_host.so (soname libnvperf_host.so) that only exports a
 * marker: the fake libcupti, told to load libnvperf_host.so through the
 * loader's search as the real one does, reports which file it got, so a test
 * can tell libcupti's own copy from another one earlier on the search path. */
__attribute__((visibility("default"))) int fake_nvperf_host_tag(void) { return 1; }
