*** Settings ***
Documentation     hello_world on lm3s6965evb under emulation.
Resource          hello_world.resource
Suite Setup       Build Hello World For lm3s6965evb
Test Teardown     Reset Emulation


*** Test Cases ***
Boots And Prints The Ready Banner
    Banner Names lm3s6965evb

Seven Inferences Equal TFLM
    Seven Inferences On lm3s6965evb Equal TFLM
