# Memory preflight: the least guest memory an archive boots in (Boot/MemoryModel.cs, fitted to
# boots of the rig's kernel), reported by Export-Initramfs and Test-Initramfs -Memory, used by
# Start-InitramfsVM as its default, and checked at its edge by booting: the archive boots whole at
# the reported minimum, and clearly below it the kernel's unpacking fails.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-memory'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    # 48 MiB of random bytes in 1 MiB files: zstd cannot shrink them, so the archive is as large as
    # the files, and the rootfs cap (half the memory) binds well above the kernel's own needs.
    $rng = [Random]::new(48)
    $entries = @(@{ Name = 'data/'; Type = 'Dir' })
    foreach ($i in 1..48) { $b = [byte[]]::new(1MB); $rng.NextBytes($b); $entries += @{ Name = "data/blob$i"; Data = $b } }
    $layers = (New-BusyboxLayer -Applet sleep), (New-TestTar -Entry $entries)
    $script:image = Get-OciImage (New-TestOciLayout -Path (Join-Path $work 'app') -Layer $layers -Tag t -Config @{ Cmd = @('/bin/sh', '-c', 'echo MEMORY-MARKER') }).Reference
    $script:archive = Join-Path $work 'app.cpio.zst'
    $script:report = $image | Export-Initramfs $archive -WarningAction SilentlyContinue
    $script:minimum = $report.MinimumMemory
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'The least memory an archive boots in' {
    It 'is in the export''s report, from the model: twice the files'' pages, the archive and the kernel''s share, with a margin' {
        $pages = 48MB + (Get-Item /bin/busybox).Length
        $minimum | Should -BeGreaterThan (2 * 48MB + $report.CompressedSize + (Get-EngineValue InitramfsPS.Boot.MemoryModel ReservedBytes))
        $minimum | Should -BeLessThan (2 * $pages + $report.CompressedSize + (Get-EngineValue InitramfsPS.Boot.MemoryModel ReservedBytes)) * 1.2
        $minimum % 1MB | Should -Be 0
        ($report | Out-String -Width 80) | Should -Match "MinMemory\s+: $($minimum / 1MB) MiB"
    }

    It 'is reported by Test-Initramfs -Memory for the archive, and is an error below it' {
        $ok = @(Test-Initramfs $archive -Memory $minimum)
        ($ok | Where-Object Id -EQ 'MemoryMinimum').Message | Should -Match "at least $($minimum / 1MB) MiB"
        @($ok | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty
        $low = @(Test-Initramfs $archive -Memory ($minimum - 1MB))
        $tooSmall = $low | Where-Object Id -EQ 'MemoryTooSmall'
        $tooSmall.Severity | Should -Be 'Error'
        $tooSmall.Message | Should -Match "-Memory gives $($minimum / 1MB - 1) MiB"
        @(Test-Initramfs $archive) | Where-Object Id -Like 'Memory*' | Should -BeNullOrEmpty -Because 'without -Memory nothing is said'
    }

    It 'counts a rootfs not yet exported as an uncompressed archive, never less than the export needs' {
        $f = @($image | Test-Initramfs -Memory 64MB)
        $f | Where-Object Id -EQ 'MemoryTooSmall' | Should -Not -BeNullOrEmpty
        [long](($f | Where-Object Id -EQ 'MemoryTooSmall').Message -replace '(?s)^.*at least (\d+) MiB.*$', '$1') * 1MB | Should -BeGreaterOrEqual $minimum
    }

    It 'is what Start-InitramfsVM adds its headroom to when no -Memory is given' {
        $expected = $minimum + (Get-EngineValue InitramfsPS.Boot.MemoryModel WorkloadHeadroom)
        $verbose = Start-InitramfsVM -Path $archive -WhatIf -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match "QEMU command line: .* -m $($expected / 1MB) "
    }
}

Describe 'Booting at the edge of the least memory' -Tag Boot {
    It 'unpacks the whole archive and runs the workload at the reported minimum' {
        $r = Start-InitramfsVM -Path $archive -Memory $minimum -Until '^MEMORY-MARKER' -Timeout 180
        $r.Matched | Should -BeTrue -Because $r.Console
        $r.UnpackError | Should -BeNullOrEmpty
    }

    It 'fails to unpack it clearly below the minimum, and the result says so' {
        $r = Start-InitramfsVM -Path $archive -Memory ([long]($minimum * 0.7 / 1MB) * 1MB) -Timeout 180
        ($r.UnpackError -or $r.Panicked -or $r.Outcome -eq 'Reset') | Should -BeTrue -Because $r.Console
        $r.UnpackError | Should -Be 'write error'
    }
}
