/* The "patch library" of the live-patch test: the fixed function lives here. */
int target_func_v2(int x) { return x * 3 + 1000; }
