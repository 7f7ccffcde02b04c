# Test-Initramfs and the checks Export-Initramfs runs: /init, ELF program interpreters and shared
# libraries looked up inside the rootfs (ELF32/64, little and big endian, RUNPATH with $ORIGIN,
# ld.so.conf), /dev/console, names and sizes the archive cannot hold; and a real Debian minbase
# rootfs (DebianImage.psm1: needs root, mmdebstrap and the Debian mirror the first time, ~60 s).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/DebianImage.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-inspect'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    # A minimal ELF file: one PT_LOAD over the whole file (addresses = offsets), an optional
    # PT_INTERP, and a PT_DYNAMIC with DT_NEEDED, DT_RUNPATH/DT_RPATH, DT_STRTAB and DT_STRSZ.
    function New-TestElf {
        param([switch] $Elf32, [switch] $BigEndian, [string] $Interpreter, [string[]] $Needed = @(),
            [string] $RunPath, [string] $RPath, [int] $Machine = 62, [switch] $BadStrTab)
        $is64 = -not $Elf32
        $ms = [IO.MemoryStream]::new()
        function W([long] $Value, [int] $Size) {
            $b = [byte[]]::new($Size)
            for ($i = 0; $i -lt $Size; $i++) { $b[$i] = [byte](($Value -shr (8 * $i)) -band 0xFF) }
            if ($BigEndian) { [array]::Reverse($b) }
            $ms.Write($b, 0, $Size)
        }
        $ptr = if ($is64) { 8 } else { 4 }
        $ehSize = if ($is64) { 64 } else { 52 }
        $phEnt = if ($is64) { 56 } else { 32 }
        $phNum = if ($Interpreter) { 3 } else { 2 }
        $strtab = [Collections.Generic.List[byte]]::new(); $strtab.Add(0)
        $offsets = @{}
        foreach ($s in @($Needed) + @($RunPath, $RPath | Where-Object { $_ })) {
            $offsets[$s] = $strtab.Count
            $strtab.AddRange([Text.Encoding]::UTF8.GetBytes($s)); $strtab.Add(0)
        }
        $interpOff = $ehSize + $phNum * $phEnt
        $interpLen = if ($Interpreter) { [Text.Encoding]::UTF8.GetByteCount($Interpreter) + 1 } else { 0 }
        $dynOff = [int]([Math]::Ceiling(($interpOff + $interpLen) / 8) * 8)
        $dynEnt = 2 * $ptr
        $dynCount = $Needed.Count + [int][bool]$RunPath + [int][bool]$RPath + 3
        $strOff = $dynOff + $dynCount * $dynEnt
        $total = $strOff + $strtab.Count
        # e_ident, e_type (ET_DYN), e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, sizes
        $ms.Write([byte[]](0x7F, 0x45, 0x4C, 0x46, ($is64 ? 2 : 1), ($BigEndian ? 2 : 1), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 16)
        W 3 2; W $Machine 2; W 1 4; W 0 $ptr; W $ehSize $ptr; W 0 $ptr; W 0 4
        W $ehSize 2; W $phEnt 2; W $phNum 2; W 0 2; W 0 2; W 0 2
        function Ph([int] $Type, [long] $Off, [long] $Size) {
            if ($is64) { W $Type 4; W 4 4; W $Off 8; W $Off 8; W $Off 8; W $Size 8; W $Size 8; W 8 8 }
            else { W $Type 4; W $Off 4; W $Off 4; W $Off 4; W $Size 4; W $Size 4; W 4 4; W 4 4 }
        }
        Ph 1 0 $total
        if ($Interpreter) { Ph 3 $interpOff $interpLen }
        Ph 2 $dynOff ($dynCount * $dynEnt)
        if ($Interpreter) { $ib = [Text.Encoding]::UTF8.GetBytes($Interpreter); $ms.Write($ib, 0, $ib.Length); $ms.WriteByte(0) }
        while ($ms.Length -lt $dynOff) { $ms.WriteByte(0) }
        foreach ($n in $Needed) { W 1 $ptr; W $offsets[$n] $ptr }
        if ($RunPath) { W 29 $ptr; W $offsets[$RunPath] $ptr }
        if ($RPath) { W 15 $ptr; W $offsets[$RPath] $ptr }
        W 5 $ptr; W ($BadStrTab ? 0x7FFF0000 : $strOff) $ptr
        W 10 $ptr; W $strtab.Count $ptr
        W 0 $ptr; W 0 $ptr
        $ms.Write($strtab.ToArray(), 0, $strtab.Count)
        Write-Output -NoEnumerate $ms.ToArray()
    }

    # A rootfs from tar entries (hashtables for New-TestTar), expanded from a one-layer layout.
    function New-TestRootfs([hashtable[]] $Entry, [string] $Name = [guid]::NewGuid().ToString('N'), [hashtable] $Config) {
        $layout = @{ Path = (Join-Path $work $Name); Layer = @(, (New-TestTar -Entry $Entry)); Tag = 't' }
        if ($Config) { $layout.Config = $Config }
        $img = New-TestOciLayout @layout
        Get-OciImage $img.Reference | Expand-OciLayers
    }

    $script:sh = @{ Name = 'bin/sh'; Data = 'a shell'; Mode = '0755' }
    $script:init = @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' }
    $script:dirs = @(@{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'lib/'; Type = 'Dir' }, @{ Name = 'dev/'; Type = 'Dir' },
        @{ Name = 'dev/console'; Type = 'CharDevice'; DevMajor = 5; DevMinor = 1; Mode = '0600' })
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Test-Initramfs on small rootfs' {
    It 'finds nothing wrong with a script /init, its shell and /dev/console' {
        $r = New-TestRootfs ($dirs + $sh + $init)
        @($r | Test-Initramfs) | Should -BeNullOrEmpty
    }

    It 'reports a missing /init as InitMissing (Error) and a missing console as Info' {
        $r = New-TestRootfs @(@{ Name = 'bin/'; Type = 'Dir' }, $sh)
        $f = @($r | Test-Initramfs)
        $f.Id | Should -Be @('InitMissing', 'ConsoleMissing')
        $f[0].Severity | Should -Be 'Error'
        $f[0].Path | Should -Be '/init'
        $f[1].Severity | Should -Be 'Info' -Because 'Export-Initramfs adds /dev/console by default'
        $f[1].Message | Should -Match 'Export-Initramfs adds it'
        "$($f[0])" | Should -Match '^Error InitMissing /init: '
    }

    It 'reports /init <Case> as <Id>' -ForEach @(
        @{ Case = 'not executable'; Init = @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0644' }; Id = 'InitNotExecutable' }
        @{ Case = 'for an absent interpreter'; Init = @{ Name = 'init'; Data = "#!/bin/bash`n"; Mode = '0755' }; Id = 'InitInterpreterMissing' }
        @{ Case = 'dangling'; Init = @{ Name = 'init'; Type = 'Symlink'; LinkName = '/sbin/nothing' }; Id = 'InitNotFound' }
    ) {
        $f = @(New-TestRootfs ($dirs + $sh + $Init) | Test-Initramfs)
        $f.Id | Should -Be @($Id)
        $f[0].Severity | Should -Be 'Error'
    }

    It 'takes an OciImage from the pipeline' {
        $img = New-TestOciLayout -Path (Join-Path $work 'img') -Layer @(, (New-TestTar -Entry ($dirs + $sh))) -Tag t
        (Get-OciImage $img.Reference | Test-Initramfs).Id | Should -Be 'InitMissing'
    }

    It 'reports names of PATH_MAX bytes or more and files of 4 GiB or more' {
        # Layers with such names are refused as they are parsed (LayerEntryNameTooLong); a file added
        # by the user at such a path reaches the check.
        $long = ('d' * 200 + '/') * 20 + ('f' * 100)
        $small = Join-Path $work 'small.txt'
        Set-Content $small 'x'
        $r = New-TestRootfs ($dirs + $sh + $init) | Add-InitramfsFile $small "/$long"
        $big = Join-Path $work 'big.bin'
        $fs = [IO.File]::Create($big); $fs.SetLength(4GB); $fs.Dispose()
        try {
            $f = @($r | Add-InitramfsFile $big /big.bin | Test-Initramfs)
        }
        finally { Remove-Item $big }
        ($f | Where-Object Id -EQ 'NameTooLong').Path | Should -Be "/$long"
        ($f | Where-Object Id -EQ 'FileTooLarge').Path | Should -Be '/big.bin'
        $f.Severity | Sort-Object -Unique | Should -Be 'Error'
    }

    It 'checks archive files with -Path and -LiteralPath: a missing /dev/console is an Error there' {
        $r = New-TestRootfs (@(@{ Name = 'bin/'; Type = 'Dir' }) + $sh + $init)
        $with = Join-Path $work 'with-console.cpio.gz'
        $without = Join-Path $work 'without-console.cpio'
        $null = $r | Export-Initramfs $with
        $null = $r | Export-Initramfs $without -NoDefaultEntries -WarningAction SilentlyContinue
        @(Test-Initramfs -Path (Join-Path $work 'with-console.cpio.g?')) | Should -BeNullOrEmpty
        $f = @(Test-Initramfs -LiteralPath $without)
        $f.Id | Should -Be @('ConsoleMissing')
        $f[0].Severity | Should -Be 'Error'
        @(Get-Item $without | Test-Initramfs).Id | Should -Be @('ConsoleMissing')
    }

    It 'formats findings as a list with the whole message' {
        $text = New-TestRootfs @(@{ Name = 'x'; Data = 'x' }) | Test-Initramfs | Out-String -Width 200
        $text | Should -Match '(?m)^Severity : Error\s+^Id       : InitMissing\s+^Path     : /init\s+^Message  : The rootfs has no /init'
    }
}

Describe 'ELF program interpreters and shared libraries' {
    It 'finds the interpreter and libraries of <Name> binaries' -ForEach @(
        @{ Name = 'ELF64 little-endian'; Elf32 = $false; BigEndian = $false; Machine = 62 }
        @{ Name = 'ELF32 little-endian'; Elf32 = $true; BigEndian = $false; Machine = 3 }
        @{ Name = 'ELF64 big-endian'; Elf32 = $false; BigEndian = $true; Machine = 22 }
        @{ Name = 'ELF32 big-endian'; Elf32 = $true; BigEndian = $true; Machine = 8 }
    ) {
        $bin = New-TestElf -Elf32:$Elf32 -BigEndian:$BigEndian -Machine $Machine -Interpreter /lib/ld-test.so.1 -Needed libfoo.so.1
        $foo = New-TestElf -Elf32:$Elf32 -BigEndian:$BigEndian -Machine $Machine -Needed libbar.so.2
        $bar = New-TestElf -Elf32:$Elf32 -BigEndian:$BigEndian -Machine $Machine
        $ld = New-TestElf -Elf32:$Elf32 -BigEndian:$BigEndian -Machine $Machine
        $complete = $dirs + $sh + $init + @(
            @{ Name = 'bin/app'; Data = $bin; Mode = '0755' },
            @{ Name = 'lib/ld-test.so.1'; Data = $ld; Mode = '0755' },
            @{ Name = 'lib/libfoo.so.1'; Type = 'Symlink'; LinkName = 'libfoo.so.1.0' },
            @{ Name = 'lib/libfoo.so.1.0'; Data = $foo },
            @{ Name = 'usr/'; Type = 'Dir' }, @{ Name = 'usr/lib/'; Type = 'Dir' },
            @{ Name = 'usr/lib/libbar.so.2'; Data = $bar })
        @(New-TestRootfs $complete | Test-Initramfs) | Should -BeNullOrEmpty

        $f = @(New-TestRootfs @($complete | Where-Object { $_.Name -notin 'usr/lib/libbar.so.2', 'lib/ld-test.so.1' }) | Test-Initramfs)
        $f.Id | Should -Be @('InterpreterMissing', 'LibraryMissing')
        $f[0].Path | Should -Be '/lib/ld-test.so.1'
        $f[0].NeededBy | Should -Be @('/bin/app')
        $f[1].Path | Should -Be 'libbar.so.2'
        $f[1].NeededBy | Should -Be @('/bin/app (through libfoo.so.1)')
        $f[1].Message | Should -Match 'libbar\.so\.2 .*needed by /bin/app'
    }

    It 'skips a library of another machine, as the loader does' {
        $bin = New-TestElf -Needed libfoo.so.1
        $wrong = New-TestElf -Machine 183
        $f = @(New-TestRootfs ($dirs + $sh + $init + @(@{ Name = 'bin/app'; Data = $bin; Mode = '0755' }, @{ Name = 'lib/libfoo.so.1'; Data = $wrong })) | Test-Initramfs)
        $f.Id | Should -Be @('LibraryMissing')
    }

    It 'follows DT_RUNPATH with $ORIGIN and /etc/ld.so.conf includes' {
        $bin = New-TestElf -Needed libone.so, libtwo.so -RunPath '$ORIGIN/../private'
        $lib = New-TestElf
        $entries = $dirs + $sh + $init + @(
            @{ Name = 'opt/'; Type = 'Dir' }, @{ Name = 'opt/app/'; Type = 'Dir' }, @{ Name = 'opt/app/bin/'; Type = 'Dir' },
            @{ Name = 'opt/app/bin/app'; Data = $bin; Mode = '0755' },
            @{ Name = 'opt/app/private/'; Type = 'Dir' }, @{ Name = 'opt/app/private/libone.so'; Data = $lib },
            @{ Name = 'opt/other/'; Type = 'Dir' }, @{ Name = 'opt/other/libtwo.so'; Data = $lib },
            @{ Name = 'etc/'; Type = 'Dir' }, @{ Name = 'etc/ld.so.conf'; Data = "include /etc/ld.so.conf.d/*.conf`n" },
            @{ Name = 'etc/ld.so.conf.d/'; Type = 'Dir' }, @{ Name = 'etc/ld.so.conf.d/other.conf'; Data = "# comment`n/opt/other`n" })
        $config = @{ Env = @('PATH=/opt/app/bin:/bin') }
        @(New-TestRootfs $entries -Config $config | Test-Initramfs) | Should -BeNullOrEmpty -Because 'libone is in $ORIGIN/../private, libtwo in a directory of ld.so.conf.d'
        $f = @(New-TestRootfs @($entries | Where-Object Name -NE 'etc/ld.so.conf.d/other.conf') -Config $config | Test-Initramfs)
        $f.Id | Should -Be @('LibraryMissing')
        $f[0].Path | Should -Be 'libtwo.so'
        $f[0].NeededBy | Should -Be @('/opt/app/bin/app') -Because 'the image config PATH names /opt/app/bin'
    }

    It 'reports a malformed ELF file as a finding, not an exception' {
        $bad = New-TestElf -Needed libfoo.so -BadStrTab
        $truncated = [byte[]](0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0)
        $f = @(New-TestRootfs ($dirs + $sh + $init + @(@{ Name = 'bin/bad'; Data = $bad; Mode = '0755' }, @{ Name = 'bin/short'; Data = $truncated; Mode = '0755' })) | Test-Initramfs)
        $f.Id | Should -Be @('ElfMalformed', 'ElfMalformed')
        $f.Severity | Sort-Object -Unique | Should -Be 'Warning'
        ($f | Where-Object Path -EQ '/bin/bad').Message | Should -Match 'DT_STRTAB'
    }

    It 'checks a binary /init and the host''s real dynamically linked ls' {
        $ls = [IO.File]::ReadAllBytes((Get-Command ls -CommandType Application)[0].Source)
        $f = @(New-TestRootfs ($dirs + $sh + @(@{ Name = 'init'; Data = $ls; Mode = '0755' })) | Test-Initramfs)
        ($f | Where-Object Id -EQ 'InterpreterMissing').NeededBy | Should -Be @('/init')
        ($f | Where-Object { $_.Id -eq 'LibraryMissing' -and $_.Path -eq 'libc.so.6' }).NeededBy | Should -Be @('/init')
    }

    It 'Export-Initramfs refuses a rootfs with a missing library (<Id>) unless -Force' -ForEach @(@{ Id = 'LibraryMissing' }) {
        $bin = New-TestElf -Needed libgone.so.1
        $r = New-TestRootfs ($dirs + $sh + $init + @(@{ Name = 'bin/app'; Data = $bin; Mode = '0755' }))
        $out = Join-Path $work 'nolib.cpio'
        $err = $null
        $r | Export-Initramfs $out -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $err[0].Exception.Message | Should -Match 'libgone\.so\.1.*/bin/app'
        Test-Path $out | Should -BeFalse
        $warnings = $null
        $report = $r | Export-Initramfs $out -Force -WarningVariable warnings -WarningAction SilentlyContinue
        Test-Path $out | Should -BeTrue
        $report.Warnings | Should -Match 'libgone'
        $warnings | Should -Match 'libgone'
    }
}

Describe 'A Debian minbase rootfs' -Tag Debian {
    BeforeAll {
        $script:debian = Get-DebianMinbaseLayout
        $script:rootfs = Get-OciImage $debian.Reference | Expand-OciLayers
        $script:withInit = $rootfs | Set-InitramfsInit -Command /bin/bash, -c, 'echo hello'
    }

    It 'passes Test-Initramfs with a generated init running /bin/bash -c' {
        $f = @($withInit | Test-Initramfs)
        @($f | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty -Because ($f | Out-String)
        $withInit.GetEntry('/init').Source | Should -Be 'generated'
    }

    It 'passes it without /init, reporting the /init Export-Initramfs would generate to run its Cmd' {
        $f = @($rootfs | Test-Initramfs)
        @($f | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty -Because ($f | Out-String)
        ($f | Where-Object Id -EQ 'InitGenerated').Message | Should -Match "runs '/bin/bash'"
    }

    It 'flags the binaries that need /lib/x86_64-linux-gnu/libc.so.6 when it is removed' {
        $broken = $withInit.Clone()
        @($broken.Remove('/usr/lib/x86_64-linux-gnu/libc.so.6')).Count | Should -Be 1 -Because '/lib is a symlink to usr/lib in bookworm'
        $broken.Resolve('/lib/x86_64-linux-gnu/libc.so.6') | Should -BeNullOrEmpty
        $f = @($broken | Test-Initramfs | Where-Object Severity -EQ 'Error')
        $libc = @($f | Where-Object { $_.Id -eq 'LibraryMissing' -and $_.Path -eq 'libc.so.6' })
        $libc.Count | Should -Be 1 -Because 'one finding per missing library'
        $libc[0].NeededBy | Should -Contain '/bin/sh' -Because "/init's interpreter is /bin/sh (dash)"
        $libc[0].NeededBy | Should -Contain '/bin/bash' -Because 'the workload is /bin/bash'
        $libc[0].NeededBy | Should -Contain '/usr/bin/ls'
        $libc[0].NeededBy.Count | Should -BeGreaterThan 100
        $libc[0].Message | Should -Match 'needed by /bin/sh, /bin/bash, '
        $f.Id | Sort-Object -Unique | Should -Be 'LibraryMissing' -Because 'the loader itself is still there'
        $withInit.Resolve('/lib/x86_64-linux-gnu/libc.so.6') | Should -Not -BeNullOrEmpty -Because 'the piped rootfs is unchanged'
    }
}
