# Parallel compression of Export-Initramfs: the cpio stream is cut into parts at entry boundaries
# chosen by content alone (the first allowed boundary after 4 MiB of cpio for gzip, 8 MiB for
# zstd), each part is compressed on its own (a whole gzip member / zstd frame) and the parts are
# concatenated in order. What is promised, and tested here:
#  - the file is byte-identical for 1, 2 and 4 workers (gzip and zstd alike);
#  - the parts decompress, concatenated, to exactly the plain .cpio export, so Import-Initramfs and
#    GNU cpio read the same entries as from a single-part archive of those bytes;
#  - the names of a hardlink group stay in one part;
#  - a zstd part is one frame written in one pass (its header carries its size) unless its last
#    entry outgrows the part buffer (2 x the part size), when that part is streamed; which form a
#    part takes is content, so the bytes still do not depend on the worker count;
#  - multi-part gzip and zstd archives boot under QEMU (two boots of about 6 s) and the guest sees
#    the contents of the streamed part and of the last part;
#  - Ctrl+C while several parts are being compressed stops every thread and leaves no file.

Describe 'Export-Initramfs with parallel compression' -Tag Parallel {
    BeforeAll {
        $modulePath = if ($env:INITRAMFSPS_MODULE) { $env:INITRAMFSPS_MODULE } else { "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1" }
        Import-Module $modulePath -Force
        Import-Module $PSScriptRoot/TestHelpers.psm1 -Force

        $script:Work = New-TestDirectory -Prefix 'initramfsps-parallel'
        $script:OldCache = $env:INITRAMFSPS_CACHE
        $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'

        # Six 3 MiB files, each with a hardlink beside it (f1, f1.link, f2, ...): with 4 and 8 MiB
        # parts a boundary is due right after some fN, where a group is half written. Before them
        # (names sort first) data/big, 20 MiB: the first zstd part cannot hold it in its 8 MiB
        # buffer and is streamed.
        $rng = [Random]::new(20261125)
        $text = [Text.Encoding]::ASCII.GetBytes(('initramfs parallel part ' * 65536).Substring(0, 1572864))
        $script:Guid = [guid]::NewGuid().ToString('N')
        $init = "#!/bin/sh`necho `"PARALLEL-$Guid-`$((6*7))`"`nmd5sum /data/big /data/f6.link`necho `"nlink=`$(stat -c %h /data/f6)`"`npoweroff -f`n"
        $layer = New-BusyboxLayer -Init $init -Applet md5sum, stat
        $entries = [Collections.Generic.List[hashtable]]::new()
        $entries.Add(@{ Name = 'data/'; Type = 'Dir' })
        $script:BigData = [byte[]]::new(20MB)
        $rng.NextBytes($BigData)
        for ($at = 0; $at + $text.Length -le $BigData.Length; $at += 2 * $text.Length) { [Array]::Copy($text, 0, $BigData, $at, $text.Length) }
        $entries.Add(@{ Name = 'data/big'; Data = $BigData })
        $script:LastData = $null
        foreach ($i in 1..6) {
            $bytes = [byte[]]::new(3MB)
            $rng.NextBytes($bytes)
            [Array]::Copy($text, 0, $bytes, 1572864, $text.Length)
            $entries.Add(@{ Name = "data/f$i"; Data = $bytes })
            $entries.Add(@{ Name = "data/f$i.link"; Type = 'Hardlink'; LinkName = "data/f$i" })
            $script:LastData = $bytes
        }
        $dataLayer = New-TestTar -Entry $entries.ToArray()
        $script:Layout = New-TestOciLayout -Path (Join-Path $Work 'layout') -Layer @($layer, $dataLayer) -Tag 'parallel'
        $script:Rootfs = Get-OciImage $Layout.Reference | Expand-OciLayers
        $script:Plain = Join-Path $Work 'plain.cpio'
        $null = $Rootfs | Export-Initramfs $Plain
        $script:PlainSha = (Get-FileHash -LiteralPath $Plain -Algorithm SHA256).Hash.ToLowerInvariant()

        function Get-ImportedPart([string] $Path) {
            $verbose = Import-Initramfs -LiteralPath $Path -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
            foreach ($v in $verbose) {
                if ($v.Message -match ': (\w+) part at offset (\d+), (\d+) bytes, (\d+) bytes of cpio, (\d+) records\.$') {
                    [pscustomobject]@{ Compression = $Matches[1]; Offset = [long]$Matches[2]; Length = [long]$Matches[3]; Cpio = [long]$Matches[4]; Records = [int]$Matches[5] }
                }
            }
        }
        function Get-EntryTable($Rootfs) {
            @($Rootfs | Get-InitramfsItem -Recurse | ForEach-Object { '{0} {1} {2:x} {3}:{4} {5} {6}' -f $_.Path, $_.Type, $_.Mode, $_.Uid, $_.Gid, $_.Size, $_.LinkTarget })
        }
        function Get-GnuCpioListing([string] $Path, [string] $Decompress) {
            $out = & bash -c "$Decompress < '$Path' | cpio -itvn --quiet 2>&1"
            if ($LASTEXITCODE -ne 0) { throw "GNU cpio failed: $out" }
            # The date column depends on the time zone and age; names, modes, links, owners, sizes stay.
            @($out | ForEach-Object { $f = $_ -split '\s+'; ($f[0..4] + $f[8..($f.Count - 1)]) -join ' ' })
        }
        function Get-BootFailureText($Boot) {
            "QEMU exit code $($Boot.ExitCode), timed out: $($Boot.TimedOut), $($Boot.Seconds) s`n--- serial output ---`n$($Boot.Output)`n--- stderr ---`n$($Boot.StdErr)"
        }
    }

    AfterAll {
        $env:INITRAMFSPS_CACHE = $OldCache
        if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
    }

    Context '<Compression>' -ForEach @(
        @{ Compression = 'Gzip'; Extension = '.cpio.gz'; Decompress = 'gzip -dc'; Single = 'gzip -6 -n -c' }
        @{ Compression = 'Zstd'; Extension = '.cpio.zst'; Decompress = 'zstd -dcq'; Single = 'zstd -3 -q -c --single-thread' }
    ) {
        BeforeAll {
            $script:Reports = @{}
            foreach ($w in 1, 2, 4) {
                $script:Reports[$w] = $Rootfs | Export-Initramfs (Join-Path $Work "w$w$Extension") -Workers $w
            }
            $script:Archive = Join-Path $Work "w2$Extension"
            $script:SinglePart = Join-Path $Work "single$Extension"
            & bash -c "$Single < '$Plain' > '$SinglePart'"
            $LASTEXITCODE | Should -Be 0
        }

        It 'writes the same bytes with 1, 2 and 4 workers, in several parts' {
            $Reports[1].PartCount | Should -BeGreaterThan 2
            $Reports[2].Sha256 | Should -Be $Reports[1].Sha256
            $Reports[4].Sha256 | Should -Be $Reports[1].Sha256
            $Reports[4].PartCount | Should -Be $Reports[1].PartCount
            (Get-FileHash -LiteralPath (Join-Path $Work "w4$Extension") -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $Reports[1].Sha256
        }

        It 'has parts that decompress, concatenated, to exactly the plain .cpio export' {
            $joined = Join-Path $Work "joined$Extension.cpio"
            & bash -c "$Decompress < '$Archive' > '$joined'"
            $LASTEXITCODE | Should -Be 0
            (Get-FileHash -LiteralPath $joined -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $PlainSha
            $Reports[2].UncompressedSize | Should -Be (Get-Item $Plain).Length
        }

        It 'is read by Import-Initramfs as the parts the report counts, with the entries of the single-part archive' {
            $parts = @(Get-ImportedPart $Archive)
            $parts.Count | Should -Be $Reports[2].PartCount
            @($parts | Where-Object Compression -NE $Compression.ToLowerInvariant()).Count | Should -Be 0
            @(Get-ImportedPart $SinglePart).Count | Should -Be 1
            $multi = Import-Initramfs -LiteralPath $Archive
            $single = Import-Initramfs -LiteralPath $SinglePart
            Get-EntryTable $multi | Should -Be (Get-EntryTable $single)
            @(Compare-Initramfs $single $multi).Count | Should -Be 0
        }

        It 'is listed by GNU cpio like the single-part archive, and by Get-CpioListing with the same data' {
            Get-GnuCpioListing $Archive $Decompress | Should -Be (Get-GnuCpioListing $SinglePart $Decompress)
            $a = @(Get-CpioListing $Archive | ForEach-Object { "$($_.Name) $($_.Ino) $($_.NLink) $($_.DataSha256)" })
            $b = @(Get-CpioListing $SinglePart | ForEach-Object { "$($_.Name) $($_.Ino) $($_.NLink) $($_.DataSha256)" })
            $a.Count | Should -BeGreaterThan 10
            $a | Should -Be $b
        }

        It 'keeps the names of each hardlink group in one part' {
            $parts = @(Get-ImportedPart $Archive)
            $names = @(Get-CpioListing $Archive).Name
            # Records are counted per part in archive order; the last part's count includes TRAILER!!!.
            $partOf = @{}
            $index = 0
            for ($p = 0; $p -lt $parts.Count; $p++) {
                for ($r = 0; $r -lt $parts[$p].Records -and $index -lt $names.Count; $r++) { $partOf[$names[$index++]] = $p }
            }
            foreach ($i in 1..6) {
                $partOf["data/f$i.link"] | Should -Be $partOf["data/f$i"] -Because "data/f$i and its hardlink form one group"
            }
            # The boundary rule did cut right after a group's first name at least once before
            # moving past the group: parts exist on both sides of the data files.
            ($partOf.Values | Sort-Object -Unique).Count | Should -BeGreaterThan 2
        }

        It 'boots under QEMU and the guest reads the last part' {
            $boot = Invoke-QemuBoot $Archive -TimeoutSeconds 120 -MemoryMB 512
            $why = Get-BootFailureText $boot
            $boot.TimedOut | Should -BeFalse -Because $why
            $boot.ExitCode | Should -Be 0 -Because $why
            $boot.Output | Should -Match ([regex]::Escape("PARALLEL-$Guid-42")) -Because $why
            $md5 = [Convert]::ToHexString([Security.Cryptography.MD5]::HashData($LastData)).ToLowerInvariant()
            $boot.Output | Should -Match ([regex]::Escape("$md5  /data/f6.link")) -Because $why
            $bigMd5 = [Convert]::ToHexString([Security.Cryptography.MD5]::HashData($BigData)).ToLowerInvariant()
            $boot.Output | Should -Match ([regex]::Escape("$bigMd5  /data/big")) -Because $why
            $boot.Output | Should -Match 'nlink=2' -Because $why
            $boot.Output | Should -Match 'reboot: Power down' -Because $why
            $boot.Output | Should -Not -Match 'Kernel panic' -Because $why
        }
    }

    Context 'a zstd part whose last entry outgrows the part buffer' {
        BeforeAll {
            $script:One = $Rootfs | Export-Initramfs (Join-Path $Work 'frames-w1.cpio.zst') -Workers 1
            $script:Three = $Rootfs | Export-Initramfs (Join-Path $Work 'frames-w3.cpio.zst') -Workers 3
            $script:Frames = @(Get-ZstdFrame ([IO.File]::ReadAllBytes($One.Path)))
        }

        It 'is alone in a streamed frame of unknown size while every other part is one frame that records its size' {
            $Frames.Count | Should -Be $One.PartCount
            $Frames.Count | Should -BeGreaterThan 3
            # data/big (20 MiB) is more than the 8 MiB part buffer: the part before it ends, and it
            # is alone in a part of its own, streamed through the compressor.
            $streamedFrames = @($Frames | Where-Object { -not $_.ContentSize })
            $streamedFrames.Count | Should -Be 1
            foreach ($f in $Frames | Where-Object ContentSize) {
                # No part that fits its buffer holds more than it (twice the 4 MiB target).
                $f.ContentSize | Should -BeLessOrEqual 8MB -Because "the part at offset $($f.Offset) fits its buffer"
            }
            $streamed = $One.UncompressedSize - ($Frames | Measure-Object ContentSize -Sum).Sum
            $streamed | Should -BeGreaterThan 20MB
            $streamed | Should -BeLessThan (20MB + 4KB) -Because 'the streamed part holds data/big alone'
        }

        It 'writes the same bytes whatever the worker count, and decompresses to the plain export' {
            $Three.Sha256 | Should -Be $One.Sha256
            $joined = Join-Path $Work 'frames-joined.cpio'
            & bash -c "zstd -dcq < '$($One.Path)' > '$joined'"
            $LASTEXITCODE | Should -Be 0
            (Get-FileHash -LiteralPath $joined -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $PlainSha
        }
    }

    Context 'memory' {
        BeforeAll {
            # Sparse host files of 4 MiB (zeros: fast to read and to compress): 16 of them, and 128.
            $script:Few = New-TestDirectory -Parent $Work -Prefix 'few'
            $script:Many = New-TestDirectory -Parent $Work -Prefix 'many'
            foreach ($i in 1..128) {
                foreach ($dir in @(if ($i -le 16) { $Few }) + $Many) {
                    $fs = [IO.File]::Create((Join-Path $dir ('z{0:D3}' -f $i))); $fs.SetLength(4MB); $fs.Dispose()
                }
            }
            $script:FewRootfs = $Rootfs | Add-InitramfsFile $Few /zeros -Recurse
            $script:ManyRootfs = $Rootfs | Add-InitramfsFile $Many /zeros -Recurse
            function Get-ExportAllocation($r, [string] $Extension) {
                $target = Join-Path $Work "alloc$Extension"
                $null = $r | Export-Initramfs $target -Workers 2
                $before = [GC]::GetTotalAllocatedBytes($true)
                $null = $r | Export-Initramfs $target -Workers 2
                [GC]::GetTotalAllocatedBytes($true) - $before
            }
        }

        It 'allocates about the same for 8 times the bytes and parts (<Extension>)' -ForEach @(
            @{ Extension = '.cpio.zst' }, @{ Extension = '.cpio.gz' }, @{ Extension = '.cpio' }
        ) {
            $few = Get-ExportAllocation $FewRootfs $Extension
            $many = Get-ExportAllocation $ManyRootfs $Extension
            # 448 MiB more data in 112 more files: buffers are reused, not allocated per part or per MiB.
            ($many - $few) | Should -BeLessThan 16MB -Because "exporting 64 MiB allocated $([Math]::Round($few / 1MB)) MiB and 512 MiB $([Math]::Round($many / 1MB)) MiB"
        }
    }

    Context 'failures and defaults' {
        It 'refuses -Workers outside 1..256 before writing anything' {
            $target = Join-Path $Work 'refused.cpio.gz'
            { $Rootfs | Export-Initramfs $target -Workers 0 -ErrorAction Stop } | Should -Throw
            Test-Path -LiteralPath $target | Should -BeFalse
            @(Get-ChildItem -LiteralPath $Work -Filter '.refused*' -Force).Count | Should -Be 0
        }

        It 'stops every thread and leaves no file when Ctrl+C comes while parts are being compressed' {
            # 160 files of 1 MiB of random bytes: 20 zstd parts, about a second of compressing on 2 cores.
            $payload = New-TestDirectory -Parent $Work -Prefix 'payload'
            $noise = [byte[]]::new(1MB)
            foreach ($i in 1..160) { $rng.NextBytes($noise); [IO.File]::WriteAllBytes((Join-Path $payload ("p{0:D3}" -f $i)), $noise) }
            $r = $Rootfs | Add-InitramfsFile $payload /payload -Recurse
            $out = Join-Path $Work 'inflight.cpio.zst'
            $ps = [PowerShell]::Create()
            $null = $ps.AddCommand('Import-Module').AddArgument($modulePath).AddStatement()
            $null = $ps.AddCommand('Export-Initramfs').AddParameter('Path', $out).AddParameter('InputObject', $r).AddParameter('Workers', 2)
            $async = $ps.BeginInvoke()
            # Stop once compressed parts reach the temporary file: later parts are still in flight.
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            $partial = $null
            while (-not $async.IsCompleted -and [DateTime]::UtcNow -lt $deadline) {
                $partial = Get-ChildItem -LiteralPath $Work -Filter '.inflight*' -Force | Where-Object Length -GT 0
                if ($partial) { break }
                Start-Sleep -Milliseconds 5
            }
            $partial | Should -Not -BeNullOrEmpty -Because 'the export must have written its first part'
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            try { $null = $ps.EndInvoke($async) } catch { }
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 5 -Because 'Ctrl+C stops an export promptly'
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            $ps.Dispose()
            Test-Path -LiteralPath $out | Should -BeFalse
            @(Get-ChildItem -LiteralPath $Work -Filter '.inflight*' -Force).Count | Should -Be 0
            # Thread names are cut to 15 characters in /proc: "InitramfsPS com" and "InitramfsPS wri".
            $threads = @(Get-ChildItem "/proc/$PID/task" | ForEach-Object { (Get-Content -LiteralPath "$($_.FullName)/comm" -ErrorAction SilentlyContinue) } | Where-Object { $_ -like 'InitramfsPS*' })
            $threads | Should -BeNullOrEmpty -Because 'no compressor or writer thread outlives a stopped export'
        }

        It 'writes a plain archive as one part, the same bytes as before parallel compression' {
            $report = $Rootfs | Export-Initramfs (Join-Path $Work 'again.cpio') -Workers 3
            $report.PartCount | Should -Be 1
            $report.Sha256 | Should -Be $PlainSha
        }
    }
}
