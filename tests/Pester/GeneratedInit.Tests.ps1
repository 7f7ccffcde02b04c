# Set-InitramfsInit's generated /init: what it refuses, how it quotes (run through the host's sh),
# how it switches users, and boots under QEMU: a busybox image (~6 s) and a Debian minbase image
# (~20 s, 1 GiB; DebianImage.psm1 needs root, mmdebstrap and the Debian mirror the first time).
# Markers use shell arithmetic so the text looked for is not in the archive.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/DebianImage.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-geninit'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    function Get-InitText($Rootfs) {
        $out = Join-Path $work ([guid]::NewGuid().ToString('N') + '.cpio')
        $null = $Rootfs | Export-Initramfs $out -Force -WarningAction SilentlyContinue
        $dir = New-TestDirectory -Parent $work
        & bsdtar -xf $out -C $dir init
        [IO.File]::ReadAllText((Join-Path $dir init))
    }

    function Get-BootFailureText($Boot) {
        "QEMU exit code $($Boot.ExitCode), timed out: $($Boot.TimedOut), $($Boot.Seconds) s`n--- serial output ---`n$($Boot.Output)`n--- stderr ---`n$($Boot.StdErr)"
    }

    $script:busybox = New-BusyboxLayer -Applet mkdir, sleep, hostname, printf, id
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Generating /init' {
    It 'refuses a rootfs without /bin/sh (InitShellMissing)' {
        $img = New-TestOciLayout -Path (Join-Path $work 'nosh') -Layer @(, (New-TestTar -Entry @(@{ Name = 'app'; Data = 'x'; Mode = '0755' }))) -Tag t -Config @{ Cmd = @('/app') }
        $err = $null
        Get-OciImage $img.Reference | Set-InitramfsInit -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitShellMissing,*'
    }

    It 'refuses an image with no command, and a rootfs of no image without -Command (InitCommandMissing)' {
        $img = New-TestOciLayout -Path (Join-Path $work 'nocmd') -Layer $busybox -Tag t
        $err = $null
        Get-OciImage $img.Reference | Set-InitramfsInit -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitCommandMissing,*'
        $err = $null
        [InitramfsPS.RootFilesystem.Rootfs]::new() | Set-InitramfsInit -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitCommandMissing,*'
    }

    It 'quotes every argument and environment value for sh (checked by running the lines in the host sh)' {
        $env = @("QUOTE=it's `"so`" `$HOME ``x`` \n", 'PATH=/usr/bin:/bin', 'EMPTY=', 'bad-name=skipped')
        $img = New-TestOciLayout -Path (Join-Path $work 'quote') -Layer $busybox -Tag t -Config @{ Cmd = @('/bin/false'); Env = $env; WorkingDir = '/tmp' }
        $warnings = $null
        $r = Get-OciImage $img.Reference | Set-InitramfsInit -Command printf, '[%s]\n', "a b", "it's", '$(echo no)', '*', "line`nbreak", '' -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings | Should -Match 'bad-name=skipped'
        $text = Get-InitText $r
        $lines = $text -split "`n"
        $from = [array]::IndexOf($lines, ($lines | Where-Object { $_ -like 'export PATH=*' } | Select-Object -First 1))
        $to = [array]::IndexOf($lines, 'status=$?')
        $from | Should -BeGreaterThan 0
        $to | Should -BeGreaterThan $from
        $body = ($lines[$from..($to - 1)] -join "`n") + "`nprintf '<%s>' `"`$QUOTE`" `"`$EMPTY`" `"`$PWD`" `"`$HOSTNAME`"`n"
        $got = (& sh -c $body) -join "`n"
        $got | Should -Be ("[a b]`n[it's]`n[`$(echo no)]`n[*]`n[line`nbreak]`n[]`n" + "<it's `"so`" `$HOME ``x`` \n><></tmp><initramfs>")
        $text | Should -Match "(?m)^# initramfsps-program: printf$"
        $text | Should -Match "(?m)^export PATH='/usr/bin:/bin'$"
        & sh -n -c $text; $LASTEXITCODE | Should -Be 0 -Because 'the whole script parses'
    }

    It 'switches to the config''s User with setpriv when the rootfs has it, and refuses when it has nothing to switch with' {
        $passwd = @{ Name = 'etc/passwd'; Data = "root:x:0:0:root:/root:/bin/sh`napp:x:1000:1001:app:/home/app:/bin/sh`n" }
        $setpriv = @{ Name = 'usr/bin/setpriv'; Data = 'x'; Mode = '0755' }
        $tar = New-TestTar -Entry @(@{ Name = 'usr/'; Type = 'Dir' }, @{ Name = 'usr/bin/'; Type = 'Dir' }, $setpriv, @{ Name = 'etc/'; Type = 'Dir' }, $passwd)
        $img = New-TestOciLayout -Path (Join-Path $work 'user') -Layer @($busybox, $tar) -Tag t -Config @{ Cmd = @('/bin/sh'); User = 'app' }
        $text = Get-InitText (Get-OciImage $img.Reference | Set-InitramfsInit)
        $text | Should -Match "(?m)^'/usr/bin/setpriv' '--reuid=1000' '--regid=1001' '--init-groups' '--' '/bin/sh'$"
        $text | Should -Match "(?m)^export HOME='/home/app'$"

        $img2 = New-TestOciLayout -Path (Join-Path $work 'user2') -Layer $busybox -Tag t -Config @{ Cmd = @('/bin/sh'); User = '1000:1000' }
        $err = $null
        Get-OciImage $img2.Reference | Set-InitramfsInit -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitUserUnsupported,*'
        $img3 = New-TestOciLayout -Path (Join-Path $work 'user3') -Layer $busybox -Tag t -Config @{ Cmd = @('/bin/sh'); User = 'root' }
        (Get-InitText (Get-OciImage $img3.Reference | Set-InitramfsInit)) | Should -Match "(?m)^'/bin/sh'$"
    }

    It 'makes Test-Initramfs report a workload program that is not in the rootfs (WorkloadMissing)' {
        $img = New-TestOciLayout -Path (Join-Path $work 'noprog') -Layer $busybox -Tag t
        $r = Get-OciImage $img.Reference | Set-InitramfsInit -Command no-such-program
        $f = @($r | Test-Initramfs | Where-Object Severity -EQ 'Error')
        $f.Id | Should -Be @('WorkloadMissing')
        $f[0].Message | Should -Match 'no-such-program'
        @(Get-OciImage $img.Reference | Set-InitramfsInit -Command cat | Test-Initramfs | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty
    }
}

Describe 'Booting a generated /init under QEMU' -Tag Boot {
    It 'runs a busybox image''s Cmd with its Env and -Hostname, reports the exit status and powers off' {
        $cmd = @('/bin/sh', '-c', 'echo "$GREETING-$((6*7)) on $(hostname) in $PWD"; exit 3')
        $img = New-TestOciLayout -Path (Join-Path $work 'bootbb') -Layer $busybox -Tag t -Config @{ Cmd = $cmd; Env = @('GREETING=busybox says hi', 'PATH=/bin'); WorkingDir = '/etc' }
        $archive = Join-Path $work 'bootbb.cpio.gz'
        $null = Get-OciImage $img.Reference | Set-InitramfsInit -Hostname testvm | Export-Initramfs $archive
        $boot = Invoke-QemuBoot $archive -TimeoutSeconds 120
        $why = Get-BootFailureText $boot
        $boot.TimedOut | Should -BeFalse -Because $why
        $boot.Output | Should -Match 'busybox says hi-42 on testvm in /etc' -Because $why
        $boot.Output | Should -Match 'initramfs: workload exited with status 3' -Because $why
        $boot.Output | Should -Match 'reboot: Power down' -Because $why
        $boot.Output | Should -Not -Match 'Kernel panic' -Because $why
    }

    It 'runs a Debian minbase image''s Cmd with its Env: output and exit status on the console, then powers off' -Tag Debian {
        $debian = Get-DebianMinbaseLayout -Env 'GREETING=hello' -Cmd '/bin/bash', '-c', 'echo "$GREETING from workload $((6*7)) as $(id -u)"; exit 7'
        $image = Get-OciImage $debian.Reference
        $image.Config.Cmd[0] | Should -Be '/bin/bash'
        $rootfs = $image | Set-InitramfsInit
        @($rootfs | Test-Initramfs | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty
        $archive = Join-Path $work 'debian.cpio.zst'
        $null = $rootfs | Export-Initramfs $archive
        $boot = Invoke-QemuBoot $archive -MemoryMB 1024 -TimeoutSeconds 240
        $why = Get-BootFailureText $boot
        $boot.TimedOut | Should -BeFalse -Because $why
        $boot.ExitCode | Should -Be 0 -Because $why
        $boot.Output | Should -Match 'hello from workload 42 as 0' -Because $why
        $boot.Output | Should -Match 'initramfs: workload exited with status 7' -Because $why
        $boot.Output | Should -Match 'reboot: Power down' -Because $why
        $boot.Output | Should -Not -Match 'Kernel panic' -Because $why
    }
}
