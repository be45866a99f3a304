"""The kernel stage: where a kernel comes from (source, toolchain, kconfig, kbuild, build,
variants) or is fetched (prebuilt, fetch, artifacts, image), and the model they share."""
