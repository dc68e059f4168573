{
  "targets": [
    {
      "target_name": "warden_native",
      "sources": ["warden_native.c", "warden_image.c", "warden_mount.c", "warden_spawn.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fno-strict-aliasing"]
    }
  ]
}
