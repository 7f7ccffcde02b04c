# A full disk while writing the cache (expanding a layer) and while writing an archive: each gives
# one clear error and loses nothing: no blob committed under a digest, no temporary file left, the
# cache still verifies, and an earlier archive at the target path is untouched. The full disk is a
# small tmpfs (needs root to mount; CI runs as root).

BeforeDiscovery {
    $script:CanMount = ((& id -u) -eq '0') -and [bool](Get-Command mount -ErrorAction SilentlyContinue)
}

Describe 'A full disk' -Skip:(-not $CanMount) {
    BeforeAll {
        Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
        Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
        $script:Work = New-TestDirectory -Prefix 'initramfsps-diskfull'
        $script:OldCache = $env:INITRAMFSPS_CACHE
        $script:Small = Join-Path $Work 'small'
        [void][IO.Directory]::CreateDirectory($Small)
        & mount -t tmpfs -o size=6m tmpfs $Small
        if ($LASTEXITCODE -ne 0) { throw "mount -t tmpfs failed ($LASTEXITCODE)" }

        # 24 MiB of incompressible data: the gzip layer fits in 6 MiB of disk only as the blob of a
        # layout elsewhere; its uncompressed tar cannot fit in the small cache.
        $noise = [byte[]]::new(24MB); [Random]::new(11).NextBytes($noise)
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' }, @{ Name = 'noise.bin'; Data = $noise })
        $script:Layout = New-TestOciLayout -Path (Join-Path $Work 'layout') -Layer @(, $tar) -Tag t
    }

    AfterAll {
        $env:INITRAMFSPS_CACHE = $OldCache
        if ($Small) { & umount $Small 2>$null }
        if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
    }

    It 'while a layer is unpacked into the cache: CacheWriteFailed, nothing committed, nothing left behind' {
        $env:INITRAMFSPS_CACHE = Join-Path $Small 'cache'
        $err = $null
        $r = Get-OciImage $Layout.Reference | Expand-OciLayers -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CacheWriteFailed,*'
        $err[0].CategoryInfo.Category | Should -Be 'WriteError'
        $err[0].Exception.Message | Should -Match 'space'
        @(Get-ChildItem -LiteralPath (Join-Path $env:INITRAMFSPS_CACHE 'tmp') -Force -ErrorAction SilentlyContinue).Count | Should -Be 0
        Test-Path (Join-Path $env:INITRAMFSPS_CACHE ("blobs/sha256/" + $Layout.DiffIds[0].Substring(7))) | Should -BeFalse
        Test-Path (Join-Path $env:INITRAMFSPS_CACHE ("index/sha256/" + $Layout.DiffIds[0].Substring(7))) | Should -BeFalse
        (Get-OciCache -Verify | Where-Object Valid -NE $true) | Should -BeNullOrEmpty
        # The disk was the only problem: a cache with room expands the same image.
        $env:INITRAMFSPS_CACHE = Join-Path $Work 'cache'
        (Get-OciImage $Layout.Reference | Expand-OciLayers).GetEntry('/noise.bin').Size | Should -Be 24MB
    }

    It 'while an archive is written: ExportWriteFailed, and the archive already at the path is untouched' {
        $env:INITRAMFSPS_CACHE = Join-Path $Work 'cache'
        $rootfs = Get-OciImage $Layout.Reference | Expand-OciLayers
        $target = Join-Path $Small 'out.cpio.zst'
        Set-Content -LiteralPath $target -Value 'the archive from yesterday'
        foreach ($workers in 1, 2) {
            $err = $null
            $report = $rootfs | Export-Initramfs $target -Workers $workers -Force -WarningAction SilentlyContinue -ErrorVariable err -ErrorAction SilentlyContinue
            $report | Should -BeNullOrEmpty
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ExportWriteFailed,*'
            $err[0].CategoryInfo.Category | Should -Be 'WriteError'
            Get-Content -LiteralPath $target | Should -Be 'the archive from yesterday'
            @(Get-ChildItem -LiteralPath $Small -Filter '.out.cpio.zst*' -Force).Count | Should -Be 0
        }
    }
}
