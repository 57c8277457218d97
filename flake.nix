{
  description = "mileage: pinned development shells (CPU demo/tests, and CUDA 12.8 for Blackwell sm_120)";

  # nixos-25.05, locked in flake.lock to one revision (with its narHash): that revision carries
  # cudaPackages_12_8, the first CUDA line that can compile for sm_120 (RTX 5090).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system);

      # The Python-side pins live in one place each: pyproject.toml for the light environment,
      # mileage/pins.py (mirrored here and in envs/miles.yaml; tests/test_envs.py checks they agree)
      # for the CUDA stack. nixpkgs' own Python packages are not used for them: nixpkgs 25.05 ships
      # other versions of snakemake/torch/transformers than the ones the project pins, so the shells
      # provide the interpreter and native libraries and uv installs the exact wheels into a venv.
      torchCu128 = "2.11.0+cu128";
      torchvisionCu128 = "0.26.0+cu128";
      torchaudioCu128 = "2.11.0+cu128";
      pytorchCu128Index = "https://download.pytorch.org/whl/cu128";
      pytorchCpuIndex = "https://download.pytorch.org/whl/cpu";

      cpuPkgs = system: import nixpkgs { inherit system; };

      # Manylinux wheels (torch, numpy, ray...) expect a conventional libstdc++ and zlib.
      wheelLibs = pkgs: pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];
    in
    {
      devShells = forAllSystems (system:
        let
          pkgs = cpuPkgs system;
        in
        {
          # CPU shell: what `make demo` and `make test` need. The venv is created once and then reused;
          # delete .venv to rebuild it from the pins.
          default = pkgs.mkShell {
            packages = [ pkgs.python312 pkgs.uv pkgs.git pkgs.gnumake pkgs.nix ];
            env = {
              UV_PYTHON = "${pkgs.python312}/bin/python3.12";
              UV_PYTHON_DOWNLOADS = "never";
            };
            shellHook = ''
              export LD_LIBRARY_PATH="${wheelLibs pkgs}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
              if [ ! -x .venv/bin/python ]; then
                uv venv .venv
                # torch==X in pyproject matches the X+cpu wheel of the CPU index (a local version label).
                uv pip install --python .venv/bin/python \
                  --index-strategy unsafe-best-match --extra-index-url ${pytorchCpuIndex} \
                  -e '.[dev]'
              fi
              source .venv/bin/activate
            '';
          };
        } // nixpkgs.lib.optionalAttrs (system == "x86_64-linux") {
          # CUDA 12.8 shell for the miles stack on Blackwell (sm_120). The GPU driver is the host's:
          # NixOS exposes it in /run/opengl-driver/lib; on other distributions run the shell through
          # nix-gl-host (or add the directory holding libcuda.so.1 to LD_LIBRARY_PATH yourself).
          cuda =
            let
              cpkgs = import nixpkgs {
                inherit system;
                config = {
                  allowUnfree = true;
                  cudaSupport = true;
                  cudaCapabilities = [ "12.0" ];
                };
              };
              cuda = cpkgs.cudaPackages_12_8;
            in
            cpkgs.mkShell {
              packages = [
                cpkgs.python312
                cpkgs.uv
                cpkgs.git
                cpkgs.gnumake
                cpkgs.cmake
                cpkgs.ninja
                cuda.cudatoolkit
                cuda.cudnn
                cuda.nccl
                cuda.backendStdenv.cc
              ];
              env = {
                UV_PYTHON = "${cpkgs.python312}/bin/python3.12";
                UV_PYTHON_DOWNLOADS = "never";
                CUDA_HOME = "${cuda.cudatoolkit}";
                CUDA_PATH = "${cuda.cudatoolkit}";
                # Source builds (flash-attn, Transformer Engine, sgl-kernel) compile for the RTX 5090 only.
                TORCH_CUDA_ARCH_LIST = "12.0";
                NVTE_CUDA_ARCHS = "120";
                # Consumer Blackwell has no NVLink: NCCL's NVLS path must stay off.
                NCCL_NVLS_ENABLE = "0";
              };
              shellHook = ''
                export LD_LIBRARY_PATH="/run/opengl-driver/lib:${wheelLibs cpkgs}:${cpkgs.lib.makeLibraryPath [ cuda.cudnn cuda.nccl ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                if [ ! -x .venv-cuda/bin/python ]; then
                  uv venv .venv-cuda
                  # The cu128 wheels come only from PyTorch's index (PyPI's torch is built for other CUDA lines).
                  uv pip install --python .venv-cuda/bin/python --index-url ${pytorchCu128Index} \
                    "torch==${torchCu128}" "torchvision==${torchvisionCu128}" "torchaudio==${torchaudioCu128}"
                  echo "CUDA venv ready; build the rest of the miles stack with docs/rtx5090.md."
                fi
                source .venv-cuda/bin/activate
              '';
            };
        });
    };
}
