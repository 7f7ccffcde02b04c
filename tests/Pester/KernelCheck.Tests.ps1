# Kernel preflight: Test-Initramfs -Kernel and Export-Initramfs -Kernel read the kernel's
# configuration (config-<release> beside it, or the IKCONFIG copy inside it) and architecture, and
# say what would stop the boot: no initrd support, no decompressor for the archive, another
# architecture, no devtmpfs for a generated /init; and warn about virtio-mmio and vsock.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-kernel'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    $script:realKernel = Get-ChildItem /boot -Filter 'vmlinuz-*' | Sort-Object Name | Select-Object -Last 1
    $script:release = $realKernel.Name -replace '^vmlinuz-', ''
    $script:realConfig = Get-Content -Raw "/boot/config-$release"

    # A copy of the real kernel with a config of our own beside it that lacks CONFIG_RD_ZSTD.
    $dir = New-Item -ItemType Directory (Join-Path $work 'nozstd')
    $script:noZstd = Join-Path $dir $realKernel.Name
    Copy-Item $realKernel.FullName $noZstd
    [IO.File]::WriteAllText((Join-Path $dir "config-$release"), (($realConfig -split "`n" | Where-Object { $_ -notmatch '^CONFIG_RD_ZSTD=' }) -join "`n"))
    # The real kernel alone: no config beside it, and its IKCONFIG (if any) inside an xz payload.
    $dir = New-Item -ItemType Directory (Join-Path $work 'bare')
    $script:bare = Join-Path $dir $realKernel.Name
    Copy-Item $realKernel.FullName $bare

    # A made-up vmlinux (ELF) for arm64 whose configuration is only in its IKCONFIG copy.
    function script:New-Vmlinux([string] $Name, [int] $Machine, [string[]] $Options) {
        $config = [Text.Encoding]::ASCII.GetBytes(($Options -join "`n") + "`n")
        $gz = [IO.MemoryStream]::new()
        $z = [IO.Compression.GZipStream]::new($gz, [IO.Compression.CompressionLevel]::Optimal, $true); $z.Write($config, 0, $config.Length); $z.Dispose()
        $elf = [byte[]]::new(64)
        $elf[0] = 0x7F; $elf[1] = [byte][char]'E'; $elf[2] = [byte][char]'L'; $elf[3] = [byte][char]'F'; $elf[4] = 2; $elf[5] = 1
        [BitConverter]::GetBytes([uint16]$Machine).CopyTo($elf, 0x12)
        $bytes = $elf + [byte[]]::new(1000) + [Text.Encoding]::ASCII.GetBytes('IKCFG_ST') + $gz.ToArray() + [Text.Encoding]::ASCII.GetBytes('IKCFG_ED') + [byte[]]::new(100)
        $path = Join-Path $work $Name
        [IO.File]::WriteAllBytes($path, $bytes)
        $path
    }
    $script:armKernel = New-Vmlinux 'vmlinux-6.1.0-arm' 183 @('CONFIG_BLK_DEV_INITRD=y', 'CONFIG_RD_GZIP=y', 'CONFIG_DEVTMPFS=y', 'CONFIG_VIRTIO_MMIO=y', 'CONFIG_VIRTIO_VSOCKETS=y')
    $script:bareKernel = New-Vmlinux 'vmlinux-6.1.0-bare' 62 @('CONFIG_RD_ZSTD=y', '# CONFIG_DEVTMPFS is not set', 'CONFIG_VIRTIO_MMIO=m', 'CONFIG_VIRTIO_VSOCKETS=m')

    $busybox = New-BusyboxLayer -Applet sleep, mkdir
    $script:image = Get-OciImage (New-TestOciLayout -Path (Join-Path $work 'app') -Layer @(, $busybox) -Tag t -Config @{ Cmd = @('/bin/sh', '-c', 'echo hi') }).Reference
    $script:zst = Join-Path $work 'app.cpio.zst'
    $script:gz = Join-Path $work 'app.cpio.gz'
    $null = $image | Export-Initramfs $zst -WarningAction SilentlyContinue
    $null = $image | Export-Initramfs $gz -WarningAction SilentlyContinue
    function script:Ids { param([Parameter(ValueFromPipeline)] $Finding) process { if ($Finding.Id -like 'Kernel*') { "$($Finding.Severity):$($Finding.Id)" } } }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Test-Initramfs -Kernel' {
    It 'finds nothing wrong with the rig''s own kernel and its config, and lists its decompressors' {
        $f = @($image | Test-Initramfs -Kernel $realKernel.FullName)
        @($f | Where-Object { $_.Id -like 'Kernel*' -and $_.Severity -eq 'Error' }) | Should -BeNullOrEmpty
        ($f | Where-Object Id -EQ 'KernelDecompressors').Message | Should -Match 'gzip \(CONFIG_RD_GZIP\) and zstd \(CONFIG_RD_ZSTD\)'
    }

    It 'refuses a .cpio.zst for a kernel whose config beside it lacks CONFIG_RD_ZSTD, and passes a .cpio.gz' {
        $f = @(Test-Initramfs $zst -Kernel $noZstd)
        $f | Ids | Should -Contain 'Error:KernelDecompressorMissing'
        ($f | Where-Object Id -EQ 'KernelDecompressorMissing').Message | Should -Match "CONFIG_RD_ZSTD.*config-$([regex]::Escape($release))"
        Test-Initramfs $gz -Kernel $noZstd | Ids | Should -Not -Contain 'Error:KernelDecompressorMissing'
    }

    It 'says it could not tell when no configuration can be found, and why' {
        $f = @(Test-Initramfs $zst -Kernel $bare)
        $f | Ids | Should -Be @('Warning:KernelConfigUnknown')
        $f[-1].Message | Should -Match "no config-$([regex]::Escape($release))"
    }

    It 'reads an IKCONFIG copy and the ELF architecture: another architecture is an error' {
        $f = @($image | Test-Initramfs -Kernel $armKernel)
        $f | Ids | Should -Contain 'Error:KernelArchitectureMismatch'
        ($f | Where-Object Id -EQ 'KernelArchitectureMismatch').Message | Should -Match 'kernel is arm64 and the image linux/amd64'
        ($f | Where-Object Id -EQ 'KernelDecompressors').Message | Should -Match 'IKCONFIG'
    }

    It 'refuses a kernel without initrd support, a generated /init without devtmpfs, and warns of missing virtio-mmio and vsock' {
        $ids = @($image | Test-Initramfs -Kernel $bareKernel | Ids)
        $ids | Should -Contain 'Error:KernelNoInitrd'
        $ids | Should -Contain 'Error:KernelNoDevtmpfs'
        $ids | Should -Contain 'Warning:KernelVirtioMmioMissing'
        $ids | Should -Contain 'Warning:KernelVsockMissing'
    }

    It 'takes a module in the archive for a device built as one' {
        $modules = New-TestDirectory -Parent $work
        $null = New-Item -ItemType Directory (Join-Path $modules 'kernel/drivers/virtio')
        Set-Content (Join-Path $modules 'kernel/drivers/virtio/virtio_mmio.ko.xz') 'module'
        $withModule = $image | Add-InitramfsFile $modules /lib/modules/6.1.0-bare -Recurse
        $ids = @($withModule | Test-Initramfs -Kernel $bareKernel | Ids)
        $ids | Should -Not -Contain 'Warning:KernelVirtioMmioMissing'
        $ids | Should -Contain 'Warning:KernelVsockMissing'
    }

    It 'refuses a kernel that is not there' {
        { Test-Initramfs $zst -Kernel (Join-Path $work 'none') -ErrorAction Stop } | Should -Throw -ErrorId 'KernelNotFound,*'
    }
}

Describe 'Export-Initramfs -Kernel' {
    It 'checks the kernel before it writes: no file for a kernel that cannot unpack zstd' {
        $out = Join-Path $work 'refused.cpio.zst'
        $err = $null
        $image | Export-Initramfs $out -Kernel $noZstd -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'KernelDecompressorMissing,*'
        Test-Path $out | Should -BeFalse
        $report = $image | Export-Initramfs (Join-Path $work 'ok.cpio.gz') -Kernel $noZstd -WarningAction SilentlyContinue
        $report.Compression | Should -Be 'Gzip'
        $forced = $image | Export-Initramfs $out -Kernel $noZstd -Force -WarningVariable w -WarningAction SilentlyContinue
        Test-Path $out | Should -BeTrue
        ($w.Message -join "`n") | Should -Match 'CONFIG_RD_ZSTD'
        ($forced.Warnings -join "`n") | Should -Match 'CONFIG_RD_ZSTD'
    }
}
