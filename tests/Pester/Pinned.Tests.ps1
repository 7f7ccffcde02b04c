# The archives' bytes, pinned. Restructuring the engine (issue "The engine as a C# library") must
# not change one byte of what Export-Initramfs writes; these sha256 were taken with the module as
# built before InitramfsPS.Core was split out (commit 7de9afc), and any later change to the bytes
# has to change them here, on purpose, with its reason in the commit. Changed once since, by issue
# 16 ("Rebuild only what changed"): inode numbers from names, and content-defined part cuts.
#
# Each input is pinned too, so a failure says which side moved: the exporter, or the machine's
# busybox-static or Debian mirror the test images are built from.

BeforeDiscovery {
    $script:isRoot = (id -u) -eq '0'
    $script:hasDebianTools = $null -ne (Get-Command mmdebstrap -ErrorAction SilentlyContinue) -and $null -ne (Get-Command umoci -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module "$PSScriptRoot/TestHelpers.psm1" -Force
    Import-Module "$PSScriptRoot/DebianImage.psm1" -Force
    $script:work = New-TestDirectory -Prefix 'pinned'
    $env:INITRAMFSPS_CACHE = Join-Path $work 'cache'

    # Fixed, whole-second mtimes and every entry type the writer handles: a hardlink group, a
    # symlink, a FIFO, a device, setuid and sticky modes, owners, and a name needing UTF-8.
    $script:syntheticTar = New-TestTar -Entry @(
        @{ Name = 'bin/'; Type = 'Dir'; Mode = 493; MTime = 1700000000 }
        @{ Name = 'bin/tool'; Type = 'File'; Mode = 2541; Uid = 0; Gid = 0; Data = ('x' * 70000); MTime = 1700000001 }
        @{ Name = 'bin/tool-link'; Type = 'Hardlink'; LinkName = 'bin/tool'; MTime = 1700000001 }
        @{ Name = 'bin/sh'; Type = 'Symlink'; LinkName = 'tool'; MTime = 1700000002 }
        @{ Name = 'dev/'; Type = 'Dir'; Mode = 493; MTime = 1700000000 }
        @{ Name = 'dev/console'; Type = 'CharDevice'; Mode = 384; DevMajor = 5; DevMinor = 1; MTime = 1700000000 }
        @{ Name = 'run/fifo'; Type = 'Fifo'; Mode = 420; MTime = 1700000000 }
        @{ Name = 'tmp/'; Type = 'Dir'; Mode = 1023; MTime = 1700000000 }
        @{ Name = "srv/caf$([char]0xE9).txt"; Type = 'File'; Mode = 416; Uid = 1000; Gid = 100; Data = "bonjour`n"; MTime = 1700000003 }
        @{ Name = 'init'; Type = 'File'; Mode = 493; Data = "#!/bin/sh`necho pinned`n"; MTime = 1700000004 }
    )
    $script:syntheticLayout = New-TestOciLayout (Join-Path $work 'synthetic') -Layer (, $syntheticTar) -Tag 'v1' -Config @{ Cmd = @('/bin/sh') }

    $script:busyboxLayout = New-TestOciLayout (Join-Path $work 'busybox') -Layer (, (New-BusyboxLayer -Init "#!/bin/sh`necho pinned`npoweroff -f`n" -SystemDirectories)) -Tag 'v1'

    # Exports with SOURCE_DATE_EPOCH-style clamping off: the mtimes are the layers' own.
    function Get-ExportSha256 {
        param([Parameter(Mandatory)] $Rootfs, [Parameter(Mandatory)][string] $Name, [Parameter(Mandatory)][string] $Compression)
        $path = Join-Path $work "$Name.cpio.$Compression"
        $null = $Rootfs | Export-Initramfs -Path $path -Compression $Compression -Force -ErrorAction Stop 3>$null
        (Get-FileHash -LiteralPath $path -Algorithm SHA256).Hash.ToLowerInvariant()
    }
}

AfterAll {
    Remove-Item Env:INITRAMFSPS_CACHE -ErrorAction SilentlyContinue
    if ($work -and (Test-Path -LiteralPath $work)) { Remove-Item -LiteralPath $work -Recurse -Force }
}

Describe 'Archive bytes pinned by sha256' {
    Context 'a synthetic image of every entry type' {
        It 'exports <Compression> to the pinned bytes' -ForEach @(
            @{ Compression = 'gzip'; Sha256 = '1f4fb05083ec7244f089480abed1fbf94fba93c06b88d0cd7c154d17a3358ff8' }
            @{ Compression = 'zstd'; Sha256 = '559d59ed55ef06620b4ef8c7265040397cb0ac1c8b78fa3a5a139e82734e8582' }
            @{ Compression = 'none'; Sha256 = '2e62abac24a48278a8c84b1fb0eb3d4ef569e546ec080f561efecc1f738d35b9' }
        ) {
            $rootfs = Get-OciImage $syntheticLayout.Reference | Expand-OciLayers
            Get-ExportSha256 $rootfs "synthetic-$Compression" $Compression | Should -Be $Sha256
        }
    }

    Context 'the busybox test image' {
        It 'is built from the pinned busybox-static binary' {
            (Get-FileHash -LiteralPath /bin/busybox -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be '3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6' -Because 'the pins below hold for this busybox-static build'
        }

        It 'exports <Compression> to the pinned bytes' -ForEach @(
            @{ Compression = 'gzip'; Sha256 = 'eb5bf74e3bf5bedb9925c9e0b062583c2ebb31a3144a86f60268086735839cd7' }
            @{ Compression = 'zstd'; Sha256 = '822d83a0a4247a3c07cb130cc8528d371adda7ef4b969a2bc4c7feca07be7efe' }
        ) {
            $rootfs = Get-OciImage $busyboxLayout.Reference | Expand-OciLayers
            Get-ExportSha256 $rootfs "busybox-$Compression" $Compression | Should -Be $Sha256
        }
    }

    Context 'the Debian minbase test image' -Skip:(-not ($isRoot -and $hasDebianTools)) {
        BeforeAll {
            $script:deb = Get-DebianMinbaseLayout
            # A fixed /init: the generated one names the image config's digest, and umoci writes
            # the config with the time it ran.
            $initFile = Join-Path $work 'debian-init'
            [IO.File]::WriteAllText($initFile, "#!/bin/sh`nexec /bin/bash`n")
            [IO.File]::SetLastWriteTimeUtc($initFile, [DateTime]::new(2025, 5, 20, 0, 0, 0, [DateTimeKind]::Utc))
            $script:debRootfs = Get-OciImage $deb.Reference | Expand-OciLayers | Add-InitramfsFile $initFile /init -Mode 0755
        }

        It 'is built from the pinned mmdebstrap tar' {
            (Get-FileHash -LiteralPath $deb.Tar -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be '1d293b3f9bcb6f078578d82ccab973cee8acb8d1e8dc17916229d4532de5462e' -Because 'the pins below hold for this mirror snapshot and SOURCE_DATE_EPOCH'
        }

        It 'exports <Compression> to the pinned bytes' -ForEach @(
            @{ Compression = 'gzip'; Sha256 = '9a55c3258b8486a37bb096d3e48776dc1d6cd08aca343e790f65d9aa57545399' }
            @{ Compression = 'zstd'; Sha256 = 'aa57f11f51d80e8dea63ac668fb32f45ca66ed7fa21d2f597da652606459f040' }
        ) {
            Get-ExportSha256 $debRootfs "debian-$Compression" $Compression | Should -Be $Sha256
        }
    }
}
