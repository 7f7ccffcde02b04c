# Export-Initramfs: the archive's bytes, what independent readers see in it, and what it refuses.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $tar = New-TestTar -Entry @(
        @{ Name = 'bin/'; Type = 'Dir' },
        @{ Name = 'bin/sh'; Data = 'not really a shell'; Mode = '0755' },
        @{ Name = 'bin/ash'; Type = 'Hardlink'; LinkName = 'bin/sh' },
        @{ Name = 'etc/'; Type = 'Dir' },
        @{ Name = 'etc/motd'; Data = 'hi'; Uid = 1000; Gid = 1000 },
        @{ Name = 'init'; Type = 'Symlink'; LinkName = 'bin/sh' },
        @{ Name = 'zz-last'; Data = '' },
        @{ Name = 'a-first'; Data = 'a' }
    )
    $script:image = New-TestOciLayout -Path (Join-Path $work layout) -Layer @(, $tar) -Tag app
    $script:rootfs = Get-OciImage $image.Reference | Expand-OciLayers
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'The archive format' {
    BeforeAll {
        $script:plain = Join-Path $work 'plain.cpio'
        $script:report = $rootfs | Export-Initramfs $plain
        $script:listing = Get-CpioListing $plain
    }

    It 'reports what it wrote' {
        $report.Path | Should -Be $plain
        $report.Compression | Should -Be 'None'
        $report.EntryCount | Should -Be $listing.Count
        $report.UncompressedSize | Should -Be (Get-Item $plain).Length
        $report.CompressedSize | Should -Be (Get-Item $plain).Length
        $report.Sha256 | Should -Be (Get-FileHash $plain -Algorithm SHA256).Hash.ToLowerInvariant()
        $report.AddedEntries | Should -Be @('/dev', '/dev/console', '/proc', '/sys', '/tmp', '/run')
    }

    It 'writes newc with parents before children and names in byte order' {
        $names = @($listing.Name)
        $names | Should -Be @('.', 'a-first', 'bin', 'bin/ash', 'bin/sh', 'dev', 'dev/console', 'etc', 'etc/motd', 'init', 'proc', 'run', 'sys', 'tmp', 'zz-last')
        [System.Text.Encoding]::ASCII.GetString([System.IO.File]::ReadAllBytes($plain), 0, 6) | Should -Be '070701'
    }

    It 'adds /dev/console as char 5:1 and the mount points' {
        $console = $listing | Where-Object Name -EQ 'dev/console'
        $console.Type | Should -Be 'CharDevice'
        "$($console.RDevMajor):$($console.RDevMinor)" | Should -Be '5:1'
        ($listing | Where-Object Name -EQ 'tmp').Perm | Should -Be ([Convert]::ToInt32('1777', 8))
    }

    It 'leaves the default entries out with -NoDefaultEntries' {
        $bare = Join-Path $work 'bare.cpio'
        $rootfs | Export-Initramfs $bare -NoDefaultEntries | Out-Null
        (Get-CpioListing $bare).Name | Should -Not -Contain 'dev/console'
    }

    It 'stores a hardlink group once under one inode' {
        $sh = $listing | Where-Object Name -EQ 'bin/sh'
        $ash = $listing | Where-Object Name -EQ 'bin/ash'
        $sh.Ino | Should -Be $ash.Ino
        $sh.NLink | Should -Be 2
        ($sh.Size + $ash.Size) | Should -Be 18
        @($listing | Group-Object Ino | Where-Object Count -GT 1).Count | Should -Be 1 -Because 'only the hardlink shares an inode'
    }

    It 'is read the same by GNU cpio and bsdtar' {
        $gnu = (& cpio -itv --numeric-uid-gid --quiet -F $plain) -join "`n"
        $LASTEXITCODE | Should -Be 0
        $gnu | Should -Match '-rw-r--r--\s+1\s+1000\s+1000\s+2 .* etc/motd'
        $gnu | Should -Match 'lrwxrwxrwx\s+1\s+0\s+0\s+6 .* init -> bin/sh'
        $gnu | Should -Match 'crw-------\s+1\s+0\s+0\s+5,\s+1 .* dev/console'
        $bsd = (& bsdtar --numeric-owner -tvf $plain) -join "`n"
        $LASTEXITCODE | Should -Be 0
        $bsd | Should -Match 'bin/ash link to bin/sh|bin/sh link to bin/ash'
        $bsd | Should -Match 'init -> bin/sh'
        @(& bsdtar -tf $plain).Count | Should -Be $listing.Count
    }

    It 'GNU cpio and bsdtar list exactly the rootfs entries, with their modes, owners and link targets' {
        $tar = New-TestTar -Entry @(
            @{ Name = 'dev/'; Type = 'Dir' },
            @{ Name = 'dev/sda'; Type = 'BlockDevice'; DevMajor = 8; DevMinor = 0; Mode = '0660'; Gid = 6 },
            @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' },
            @{ Name = 'fifo'; Type = 'Fifo'; Mode = '0620'; Uid = 7 },
            @{ Name = 'home/'; Type = 'Dir'; Mode = '0750'; Uid = 1000; Gid = 1000 },
            @{ Name = 'home/su'; Data = 'x'; Mode = '4755'; Uid = 1000; Gid = 100 },
            @{ Name = 'home/up'; Type = 'Symlink'; LinkName = '../tmp' },
            @{ Name = 'tmp/'; Type = 'Dir'; Mode = '1777' },
            @{ Name = 'init'; Data = "#!/home/su`n"; Mode = '0755' }
        )
        $img = New-TestOciLayout -Path (Join-Path $work 'listing') -Layer @(, $tar) -Tag t
        $r = Get-OciImage $img.Reference | Expand-OciLayers
        $out = Join-Path $work 'listing.cpio'
        $r | Export-Initramfs $out -NoDefaultEntries | Out-Null
        $expected = foreach ($e in $r.GetEntries()) {
            $name = if ($e.Path -eq '/') { '.' } else { $e.Path.Substring(1) }
            $link = if ($e.Type -eq 'Symlink') { " -> $($e.LinkTarget)" } else { '' }
            "$($e.ModeString) $($e.Uid) $($e.Gid) $name$link"
        }
        $env:LC_ALL = 'C'
        # -rwsr-xr-x   1 1000     100             1 Nov 14  2023 home/su
        $gnu = foreach ($line in (& cpio -itvn --quiet -F $out)) {
            if ($line -notmatch '^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+(?:\d+,\s+\d+|\d+)\s+\w{3}\s+\d+\s+[\d:]+\s(.+)$') { throw "cannot parse: $line" }
            "$($Matches[1]) $($Matches[2]) $($Matches[3]) $($Matches[4])"
        }
        $bsd = foreach ($line in (& bsdtar --numeric-owner -tvf $out)) {
            if ($line -notmatch '^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+(?:\d+,\s*\d+|\d+)\s+\w{3}\s+\d+\s+[\d:]+\s(.+)$') { throw "cannot parse: $line" }
            "$($Matches[1]) $($Matches[2]) $($Matches[3]) $($Matches[4])"
        }
        $gnu | Should -Be $expected
        $bsd | Should -Be $expected
    }

    It 'gives byte-identical archives for the same input (<Name>)' -ForEach @(
        @{ Name = 'none'; File = 'same.cpio' }
        @{ Name = 'gzip'; File = 'same.cpio.gz' }
        @{ Name = 'zstd'; File = 'same.cpio.zst' }
    ) {
        $one = Join-Path $work "1-$File"; $two = Join-Path $work "2-$File"
        $a = $rootfs | Export-Initramfs $one
        $b = Get-OciImage $image.Reference | Export-Initramfs $two
        $a.Sha256 | Should -Be $b.Sha256
        (Get-FileHash $one).Hash | Should -Be (Get-FileHash $two).Hash
    }

    It 'picks the compression from the file name and -Compression overrides it' {
        $gz = $rootfs | Export-Initramfs (Join-Path $work 'x.cpio.gz')
        $gz.Compression | Should -Be 'Gzip'
        $bytes = [System.IO.File]::ReadAllBytes($gz.Path)
        $bytes[0..1] | Should -Be @(0x1f, 0x8b)
        $bytes[4..7] | Should -Be @(0, 0, 0, 0) -Because 'the gzip header carries no time'
        $bytes[9] | Should -Be 3 -Because 'the OS byte is fixed to Unix'
        $zst = $rootfs | Export-Initramfs (Join-Path $work 'x.cpio.zst')
        [System.IO.File]::ReadAllBytes($zst.Path)[0..3] | Should -Be @(0x28, 0xb5, 0x2f, 0xfd)
        $forced = $rootfs | Export-Initramfs (Join-Path $work 'forced.img') -Compression Zstd -CompressionLevel 19
        $forced.Compression | Should -Be 'Zstd'
        $forced.CompressionLevel | Should -Be 19
        & zstd -t -q $forced.Path; $LASTEXITCODE | Should -Be 0
        & gzip -t $gz.Path; $LASTEXITCODE | Should -Be 0
        (Get-CpioListing $forced.Path).Name | Should -Be (Get-CpioListing $gz.Path).Name
    }

    It 'clamps mtimes with -SourceDateEpoch' {
        $out = Join-Path $work 'clamped.cpio'
        $rootfs | Export-Initramfs $out -SourceDateEpoch 1000 | Out-Null
        (Get-CpioListing $out | Where-Object MTime -GT 1000) | Should -BeNullOrEmpty
        (Get-CpioListing $out | Where-Object Name -EQ 'etc/motd').MTime | Should -Be 1000
    }

    It 'refuses a compression level outside the range' {
        $err = $null
        $rootfs | Export-Initramfs (Join-Path $work 'bad.cpio.gz') -CompressionLevel 12 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CompressionLevelInvalid,*'
        Test-Path (Join-Path $work 'bad.cpio.gz') | Should -BeFalse
    }
}

Describe 'Bootability checks' {
    It 'refuses an archive without /init (<Case>) and leaves no file' -ForEach @(
        @{ Case = 'missing'; Init = $null; Id = 'InitMissing' }
        @{ Case = 'not executable'; Init = @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0644' }; Id = 'InitNotExecutable' }
        @{ Case = 'interpreter absent'; Init = @{ Name = 'init'; Data = "#!/bin/bash`n"; Mode = '0755' }; Id = 'InitInterpreterMissing' }
        @{ Case = 'dangling symlink'; Init = @{ Name = 'init'; Type = 'Symlink'; LinkName = '/sbin/nothing' }; Id = 'InitNotFound' }
    ) {
        $entries = @(@{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'bin/sh'; Data = 'x'; Mode = '0755' })
        if ($Init) { $entries += $Init }
        $img = New-TestOciLayout -Path (Join-Path $work "noinit-$Id") -Layer @(, (New-TestTar -Entry $entries)) -Tag t
        $out = Join-Path $work "noinit-$Id.cpio.gz"
        $err = $null
        Get-OciImage $img.Reference | Export-Initramfs $out -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $err[0].CategoryInfo.Category | Should -Be 'InvalidResult'
        Test-Path $out | Should -BeFalse
        Get-ChildItem $work -Filter "*.partial" -Force | Should -BeNullOrEmpty
    }

    It 'writes it anyway under -Force, with a warning' {
        $img = New-TestOciLayout -Path (Join-Path $work 'forced-noinit') -Layer @(, (New-TestTar -Entry @(@{ Name = 'x'; Data = 'x' }))) -Tag t
        $out = Join-Path $work 'forced-noinit.cpio'
        $warnings = $null
        $report = Get-OciImage $img.Reference | Export-Initramfs $out -Force -WarningVariable warnings -WarningAction SilentlyContinue
        Test-Path $out | Should -BeTrue
        $warnings[0] | Should -Match '/init'
        $report.Warnings[0] | Should -Match '/init'
    }

    It 'Set-InitramfsInit -Content writes an executable /init with LF line ends' {
        $r = $rootfs | Set-InitramfsInit -Content "#!/bin/sh`r`necho hi`r`n"
        $init = $r.GetEntry('/init')
        $init.Type | Should -Be 'File'
        $init.ModeString | Should -Be '-rwxr-xr-x'
        $init.Size | Should -Be 18
        $out = Join-Path $work 'init.cpio'
        $r | Export-Initramfs $out | Out-Null
        $script = Join-Path $work 'init.expected'
        [System.IO.File]::WriteAllText($script, "#!/bin/sh`necho hi`n")
        (Get-CpioListing $out | Where-Object Name -EQ 'init').DataSha256 | Should -Be (Get-FileHash $script).Hash.ToLowerInvariant()
    }

    It 'Set-InitramfsInit -Path takes a host script as it is' {
        $script = Join-Path $work 'init.sh'
        [System.IO.File]::WriteAllText($script, "#!/bin/sh`nexec /bin/sh`n")
        $r = $rootfs | Set-InitramfsInit -Path $script
        $r.GetEntry('/init').Size | Should -Be (Get-Item $script).Length
        $r.GetEntry('/init').Source | Should -Be "host:$script"
    }
}

Describe 'Writing the file' {
    It 'honours -WhatIf: no file, no report' {
        $out = Join-Path $work 'whatif.cpio'
        $rootfs | Export-Initramfs $out -WhatIf | Should -BeNullOrEmpty
        Test-Path $out | Should -BeFalse
    }

    It 'refuses to replace a file with -NoClobber and keeps it intact' {
        $out = Join-Path $work 'keep.cpio'
        Set-Content $out 'precious'
        $err = $null
        $rootfs | Export-Initramfs $out -NoClobber -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'OutputExists,*'
        Get-Content $out | Should -Be 'precious'
    }

    It 'replaces an existing file atomically by default' {
        $out = Join-Path $work 'replace.cpio'
        Set-Content $out 'old'
        $rootfs | Export-Initramfs $out | Out-Null
        (Get-CpioListing $out).Count | Should -BeGreaterThan 5
    }

    It 'writes progress at most every 100 ms, however many entries' {
        $many = [InitramfsPS.RootFilesystem.Rootfs]::new()
        $template = [InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = '/'; Type = 'Directory'; Mode = 0x1ED }
        foreach ($i in 1..10000) {
            $many.Set([InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = "/d$($i % 50)/f$i"; Type = 'Symlink'; Mode = 0x1FF; LinkTarget = "target-$i" }, $template)
        }
        $ps = [PowerShell]::Create()
        $null = $ps.AddCommand('Import-Module').AddArgument($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1").AddStatement()
        $null = $ps.AddCommand('Export-Initramfs').AddParameter('Path', (Join-Path $work 'progress.cpio.zst')).AddParameter('InputObject', $many).AddParameter('Force').AddParameter('WarningAction', 'SilentlyContinue')
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $report = $ps.Invoke()
        $elapsed = $sw.Elapsed.TotalMilliseconds
        $records = @($ps.Streams.Progress)
        $ps.Dispose()
        $report[0].EntryCount | Should -BeGreaterThan 10000
        $records.Count | Should -BeGreaterThan 0
        # One record per 100 ms at most, plus the final one and the one that completes the bar.
        $records.Count | Should -BeLessOrEqual ([Math]::Ceiling($elapsed / 100) + 2) -Because "$($records.Count) records in $([int]$elapsed) ms"
    }

    It 'leaves no partial file when content vanished before the export' {
        $hostFile = Join-Path $work 'vanishing.bin'
        Set-Content $hostFile 'soon gone'
        $r = $rootfs | Add-InitramfsFile $hostFile /usr/bin/vanishing
        Remove-Item $hostFile
        $out = Join-Path $work 'vanished.cpio.zst'
        $err = $null
        $r | Export-Initramfs $out -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'HostFileChanged,*'
        Test-Path $out | Should -BeFalse
        Get-ChildItem $work -Filter '.vanished*' -Force | Should -BeNullOrEmpty
    }

    It 'leaves no partial file when stopped with Ctrl+C (StopProcessing)' {
        $big = Join-Path $work 'big.bin'
        $fs = [System.IO.File]::Create($big); $fs.SetLength(3GB); $fs.Dispose()
        $r = $rootfs | Add-InitramfsFile $big /big.bin
        $out = Join-Path $work 'stopped.cpio.gz'
        $ps = [PowerShell]::Create()
        $null = $ps.AddCommand('Import-Module').AddArgument($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1").AddStatement()
        $null = $ps.AddCommand('Export-Initramfs').AddParameter('Path', $out).AddParameter('InputObject', $r)
        $async = $ps.BeginInvoke()
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not (Get-ChildItem $work -Filter '.stopped*' -Force) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
        Get-ChildItem $work -Filter '.stopped*' -Force | Should -Not -BeNullOrEmpty -Because 'the export must have started writing'
        $ps.Stop()
        try { $null = $ps.EndInvoke($async) } catch { }
        $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        $ps.Dispose()
        Remove-Item $big
        Test-Path $out | Should -BeFalse
        Get-ChildItem $work -Filter '.stopped*' -Force | Should -BeNullOrEmpty
    }
}
